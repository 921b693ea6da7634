"""Bit-identical outputs before and after a change: the default stylize, dream and apply on the tuning pairs.

Run it once on the tree before the change and once on the tree after, on the same machine, and compare:

    PYTHONPATH=OLD/src python bench/bench_identical.py --write /tmp/before.json
    PYTHONPATH=src python bench/bench_identical.py --write /tmp/after.json --compare /tmp/before.json

Each output is recorded as the SHA-256 of its pixels (the PNG's embedded parameters hold timings, so the
files themselves differ). Without ``../shared/images`` the bundled examples stand in for the tuning pairs.
Exits 1 if ``--compare`` finds any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import harness
from compare_lite import load_set

EXAMPLES = harness.EXAMPLES


def pairs(tmp: Path) -> list[tuple[str, Path, Path]]:
    """Each tuning photo with one tuning painting in turn (the bundled examples without ../shared)."""
    try:
        photos, paintings = load_set("tuning", tmp)
        if not all(p.is_file() for p in [*photos.values(), *paintings.values()]):
            raise FileNotFoundError
    except (FileNotFoundError, OSError):
        photos = {"astronaut": EXAMPLES / "astronaut.jpg", "chelsea": EXAMPLES / "chelsea.jpg"}
        paintings = {"starry_night": EXAMPLES / "starry_night.jpg", "great_wave": EXAMPLES / "great_wave.jpg"}
    names = list(paintings)
    return [(f"{photo}__{names[i % len(names)]}", path, paintings[names[i % len(names)]])
            for i, (photo, path) in enumerate(photos.items())]


def digest(image) -> str:
    return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", required=True, help="where to write this tree's digests (JSON)")
    parser.add_argument("--compare", help="digests of the other tree to compare with")
    parser.add_argument("--tasks", nargs="+", default=["stylize", "dream", "apply"])
    args = parser.parse_args()
    import dreamstyle

    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, photo, painting in pairs(Path(tmp)):
            started = time.perf_counter()
            if "stylize" in args.tasks:
                digests[f"stylize/{name}"] = digest(dreamstyle.stylize(photo, painting, progress=False))
            if "dream" in args.tasks:
                digests[f"dream/{name.split('__')[0]}"] = digest(dreamstyle.dream(photo, size=512, progress=False))
            if "apply" in args.tasks:
                digests[f"apply/{name.split('__')[0]}"] = digest(
                    dreamstyle.apply(photo, model="starry_night", size=512, progress=False)[0])
            harness.log(f"{name}: {time.perf_counter() - started:.1f} s")
    result = {"benchmark": "bit-identical outputs", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": harness.machine(), "source": dreamstyle.__file__, "digests": digests}
    harness.write_results(args.write, result)
    if not args.compare:
        return 0
    other = json.loads(Path(args.compare).read_text())["digests"]
    differ = [key for key in digests if other.get(key) != digests[key]]
    missing = [key for key in other if key not in digests]
    for key in digests:
        harness.log(f"{key}: {'differs' if key in differ else 'identical'}")
    note = f"; not run: {missing}" if missing else ""
    harness.log(f"{len(digests) - len(differ)} of {len(digests)} identical{note}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
