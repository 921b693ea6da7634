"""Re-make the README's stylize pictures with the current defaults (run after a default changes).

    python docs/make_pictures.py          # needs ../shared/images for the shared pairs

Each picture is the command its README caption names, written as PNG to a temp folder and saved here
as JPEG. The dream, explorer and SqueezeNet content-weight pictures do not depend on the stylize
defaults and are left as they are.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "src" / "dreamstyle" / "examples"
SHARED = DOCS.parents[1] / "shared" / "images"


def dreamstyle(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "dreamstyle", *map(str, args), "--quiet"], check=True)


def jpeg(png: Path, name: str) -> None:
    Image.open(png).convert("RGB").save(DOCS / name, quality=88)
    print(f"wrote docs/{name}")


def soft_masks(content: Path, folder: Path) -> tuple[Path, Path]:
    """Left and right masks over the content, blending across the middle third."""
    w, h = Image.open(content).size
    ramp = np.clip((np.arange(w) / w - 1 / 3) * 3, 0, 1)  # 0 on the left third, 1 on the right third
    right = np.tile(ramp, (h, 1))
    paths = folder / "left.png", folder / "right.png"
    Image.fromarray(((1 - right) * 255).astype(np.uint8)).save(paths[0])
    Image.fromarray((right * 255).astype(np.uint8)).save(paths[1])
    return paths


def side_by_side(cells: list[tuple[Path, str]], out: Path, side: int = 384) -> None:
    """The pictures in a row, each scaled to ``side`` px on its long side, labelled (the sheet's layout)."""
    from dreamstyle.images import grid, load_image, resize_long_side

    grid([(resize_long_side(load_image(p), side), label) for p, label in cells], len(cells)).save(out)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        dreamstyle("stylize", EXAMPLES / "astronaut.jpg", EXAMPLES / "starry_night.jpg", "-o", t / "a.png")
        jpeg(t / "a.png", "astronaut_starry_night.jpg")
        dreamstyle("stylize", EXAMPLES / "chelsea.jpg", EXAMPLES / "great_wave.jpg", "-o", t / "c.png")
        jpeg(t / "c.png", "chelsea_great_wave.jpg")
        dreamstyle("stylize", EXAMPLES / "astronaut.jpg", EXAMPLES / "starry_night.jpg", "-o", t / "pv.png",
                   "--preset", "preview")
        side_by_side([(t / "pv.png", "--preset preview (256 px, 30 steps)"), (t / "a.png", "default (512 px)")],
                     t / "presets.png")
        jpeg(t / "presets.png", "presets.jpg")
        if not SHARED.is_dir():
            print(f"{SHARED} is missing: the shared-pair pictures are left as they are")
            return 0
        dreamstyle("sheet", SHARED / "content_tubingen.jpg", SHARED / "style_the_scream.jpg", "-o", t / "p.png",
                   "--sweep", "preserve-color=none,luminance,match", "--size", "320")
        jpeg(t / "p.png", "sheet_preserve_color.jpg")
        gate = SHARED / "content_golden_gate.jpg"
        left, right = soft_masks(gate, t)
        dreamstyle("stylize", gate, SHARED / "style_starry_night.jpg", SHARED / "style_great_wave.jpg", "--masks",
                   left, right, "--size", "384", "-o", t / "m.png")
        jpeg(t / "m.png", "masks_starry_wave.jpg")
        rows = []
        for content, style in (("content_tubingen.jpg", "style_starry_night.jpg"),
                               ("content_golden_gate.jpg", "style_great_wave.jpg")):
            out = t / f"d_{content}.png"
            dreamstyle("sheet", SHARED / content, SHARED / style, "-o", out, "--sweep", "dream=auto=0,auto=1,auto=3",
                       "--size", "384")
            rows.append(Image.open(out).convert("RGB"))
        both = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
        y = 0
        for r in rows:
            both.paste(r, (0, y))
            y += r.height
        both.save(t / "d.png")
        jpeg(t / "d.png", "stylize_dream.jpg")
        dreamstyle("sheet", gate, SHARED / "style_the_scream.jpg", "-o", t / "s.png", "--sweep",
                   "model=efficientnet_lite0,squeezenet1_0", "--size", "384")
        jpeg(t / "s.png", "lite0_vs_squeezenet.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
