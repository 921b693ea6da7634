"""Video (issue 9): flicker with and without temporal consistency, on the real clips in ../shared/video.

For each clip (at most ``--seconds`` of it, at ``--size`` px), ``dreamstyle video --mode apply`` with a
bundled style runs twice: frame by frame (``temporal_weight`` 0) and with the default temporal
consistency. Reported per clip:
* the warping error (Lai et al. 2018) of both and of the input video itself (the floor), computed
  on the decoded output videos with the input's flow;
* the style distance of both (Gram matrices under SqueezeNet, a network that trained neither, relative
  to the input frames'), so the steadiness is not bought with a weaker style;
* seconds per frame and the share of them spent on optical flow.

    python bench/bench_video.py [--style starry_night] [--size 512] [--seconds 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import harness

ROOT = harness.REPO
CLIPS = ROOT.parent / "shared" / "video"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_video.json")
    args = parser.parse_args()
    harness.wait_idle()
    import numpy as np
    import torch

    import dreamstyle
    from dreamstyle.backbones import Backbone
    from dreamstyle.fastnet.styles import painting_of
    from dreamstyle.images import resized_tensor, to_tensor
    from dreamstyle.motion import flow as motion
    from dreamstyle.motion.frames import read_frames
    from dreamstyle.objectives import gram

    judge = Backbone("squeezenet1_0").extractor(["relu1", "fire2", "fire3", "fire5"])

    def grams(image) -> dict:
        with torch.no_grad():
            return {k: gram(v) for k, v in judge(to_tensor(image)).items()}

    def distance(a: dict, b: dict) -> float:
        return sum(float((a[k] - b[k]).pow(2).mean() / b[k].pow(2).mean()) for k in b)

    from PIL import Image

    painting = harness.EXAMPLES / f"{args.style}.jpg"  # the full painting; the bundled copy is a 256-px thumbnail
    painting = painting if painting.is_file() else painting_of(args.style)
    with torch.no_grad():
        target = {k: gram(v) for k, v in judge(resized_tensor(Image.open(painting), args.size)).items()}
    results: dict = {"style": args.style, "size": args.size, "seconds": args.seconds, "clips": {}}
    # time spent in flow: count it by wrapping the two flow functions
    spent = {"flow": 0.0}
    real_flow = motion.flow

    def timed_flow(a, b):
        t = time.perf_counter()
        try:
            return real_flow(a, b)
        finally:
            spent["flow"] += time.perf_counter() - t

    import dreamstyle.tasks.video as video_task

    video_task.flow = timed_flow  # the task's own reference
    motion.flow = timed_flow  # reliable() calls it too
    with tempfile.TemporaryDirectory() as tmp:
        for clip in sorted(CLIPS.glob("*.mp4")):
            inputs, _ = read_frames(clip, args.size, 0.0, args.seconds)
            row: dict = {"frames": len(inputs), "frame_size": list(inputs[0].size)}
            motion.flow = real_flow
            row["warping_error_input"] = round(motion.warping_error([np.asarray(f) for f in inputs],
                                                                    [np.asarray(f) for f in inputs]), 6)
            motion.flow = timed_flow
            base = np.mean([distance(grams(f), target) for f in inputs[:: max(1, len(inputs) // 8)]])
            for name, weight in (("frame_by_frame", 0.0), ("temporal", 0.6)):
                spent["flow"] = 0.0
                t = time.perf_counter()
                out = dreamstyle.video(clip, Path(tmp) / f"{clip.stem}_{name}.mp4", model=args.style, size=args.size,
                                       end=args.seconds, temporal_weight=weight, progress=False)
                seconds = time.perf_counter() - t
                outputs, _ = read_frames(out)
                motion.flow = real_flow
                err = motion.warping_error([np.asarray(f) for f in outputs], [np.asarray(f) for f in inputs])
                motion.flow = timed_flow
                style = np.mean([distance(grams(f), target) for f in outputs[:: max(1, len(outputs) // 8)]])
                row[name] = {"warping_error": round(err, 6), "style_distance_relative": round(float(style / base), 3),
                             "seconds_per_frame": round(seconds / len(inputs), 3),
                             "flow_share": round(spent["flow"] / seconds, 3)}
            row["ratio_temporal_vs_frame_by_frame"] = round(row["temporal"]["warping_error"]
                                                            / row["frame_by_frame"]["warping_error"], 3)
            results["clips"][clip.stem] = row
            harness.log(f"{clip.stem}: {row}")
    harness.log(f"wrote {harness.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
