"""Make docs/video_modes.jpg: frames of Big Buck Bunny (Blender Foundation, CC BY 3.0) through the three
video modes, with the defaults (starry_night for apply and stylize). Needs ../shared/video.

    python docs/video_modes.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

import dreamstyle
from dreamstyle.motion.frames import read_frames

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "video" / "bigbuckbunny.mp4"
PAINTING = ROOT / "src" / "dreamstyle" / "examples" / "starry_night.jpg"
PICK = (0, 6, 12)  # of the 13 frames used (2 s at every 4th frame)


def main() -> None:
    select = dict(size=384, start=1.0, end=3.0, every=4)
    rows = [("input", read_frames(CLIP, 384, 1.0, 3.0, 4)[0])]
    with tempfile.TemporaryDirectory() as tmp:
        for mode, extra in (("apply", {"model": "starry_night"}), ("stylize", {"style_images": [str(PAINTING)]}),
                            ("dream", {})):
            out = dreamstyle.video(CLIP, Path(tmp) / f"{mode}.gif", mode=mode, **select, **extra)
            rows.append((mode, read_frames(out)[0]))
    w, h = rows[0][1][0].size
    sheet = Image.new("RGB", (80 + w * len(PICK), h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, frames) in enumerate(rows):
        draw.text((8, r * h + h // 2), name, fill="black")
        for c, i in enumerate(PICK):
            sheet.paste(frames[min(i, len(frames) - 1)].convert("RGB"), (80 + c * w, r * h))
    sheet.save(ROOT / "docs" / "video_modes.jpg", quality=88)


if __name__ == "__main__":
    main()
