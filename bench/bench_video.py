"""Video: flicker with and without temporal consistency, per mode, on the real clips in ../shared/video.

For each clip and mode, ``dreamstyle.video`` runs twice on the same frames: frame by frame
(``temporal_weight`` 0) and with the mode's default temporal consistency. Reported per run:
* the warping error (Lai et al. 2018), computed on the decoded output with the input's flow, and the
  input video's own error (the floor);
* for apply and stylize, the style distance (Gram matrices under SqueezeNet, a network neither the
  bundled style nor the stylize default trained on or optimized with, relative to the input frames');
  for dream, the dream's strength (mean absolute difference from the input, 0-255), so that the
  steadiness is not bought with a weaker style or dream;
* seconds per frame and the share of them spent on optical flow.

Modes and the frames they use (a full stylize is ~20 s a frame, so stylize gets fewer frames):
apply: the first 4 s; stylize: the first 1 s, every 2nd frame; dream: the first 2 s. All at 512 px.

    python bench/bench_video.py [--modes apply,stylize,dream] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import harness

ROOT = harness.REPO
CLIPS = ROOT.parent / "shared" / "video"
# mode -> (seconds of each clip, every Nth frame, the mode's settings)
PLANS = {"apply": (4.0, 1, {"model": "starry_night"}),
         "stylize": (1.0, 2, {"style_images": [str(harness.EXAMPLES / "starry_night.jpg")]}),
         "dream": (2.0, 1, {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="apply,stylize,dream")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_video.json")
    args = parser.parse_args()
    harness.wait_idle()
    import numpy as np
    import torch
    from PIL import Image

    import dreamstyle
    import dreamstyle.tasks.video as video_task
    from dreamstyle.backbones import Backbone
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

    with torch.no_grad():
        painting = Image.open(harness.EXAMPLES / "starry_night.jpg")
        target = {k: gram(v) for k, v in judge(resized_tensor(painting, args.size)).items()}
    results: dict = {"machine": harness.machine(), "git": harness.git_state(), "size": args.size,
                     "plans": {m: {"seconds": p[0], "every": p[1], **p[2]} for m, p in PLANS.items()}, "clips": {}}
    spent = {"flow": 0.0}
    real_flow = motion.flow

    def timed_flow(a, b):
        t = time.perf_counter()
        try:
            return real_flow(a, b)
        finally:
            spent["flow"] += time.perf_counter() - t

    def strength(frames: list, inputs: list) -> float:
        diffs = []
        for f, i in zip(frames, inputs):
            a, b = np.asarray(f, float), np.asarray(i, float)
            h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])  # MP4 keeps even sizes
            diffs.append(np.abs(a[:h, :w] - b[:h, :w]).mean())
        return float(np.mean(diffs))

    earlier = json.loads(args.out.read_text()).get("clips", {}) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in sorted(CLIPS.glob("*.mp4")):
            rows: dict = dict(earlier.get(clip.stem, {}))  # a run of some modes keeps the others' rows
            for mode in args.modes.split(","):
                seconds, every, extra = PLANS[mode]
                inputs, _ = read_frames(clip, args.size, 0.0, seconds, every)
                row: dict = {"frames": len(inputs), "frame_size": list(inputs[0].size)}
                arrays = [np.asarray(f) for f in inputs]
                row["warping_error_input"] = round(motion.warping_error(arrays, arrays), 6)
                base = np.mean([distance(grams(f), target) for f in inputs[:: max(1, len(inputs) // 8)]])
                for name, weight in (("frame_by_frame", 0.0), ("temporal", None)):
                    spent["flow"] = 0.0
                    video_task.flow = motion.flow = timed_flow  # reliable() calls it too
                    t = time.perf_counter()
                    out = dreamstyle.video(clip, Path(tmp) / f"{clip.stem}_{mode}_{name}.mp4", mode=mode,
                                           size=args.size, end=seconds, every=every, temporal_weight=weight,
                                           progress=False, **extra)
                    took = time.perf_counter() - t
                    video_task.flow = motion.flow = real_flow
                    outputs, _ = read_frames(out)
                    err = motion.warping_error([np.asarray(f) for f in outputs], arrays)
                    result = {"warping_error": round(err, 6), "seconds_per_frame": round(took / len(inputs), 3),
                              "flow_share": round(spent["flow"] / took, 3)}
                    if mode == "dream":
                        result["dream_strength"] = round(strength(outputs, inputs), 2)
                    else:
                        style = np.mean([distance(grams(f), target) for f in outputs[:: max(1, len(outputs) // 8)]])
                        result["style_distance_relative"] = round(float(style / base), 3)
                    row[name] = result
                row["ratio_temporal_vs_frame_by_frame"] = round(row["temporal"]["warping_error"]
                                                                / row["frame_by_frame"]["warping_error"], 3)
                rows[mode] = {**row, "machine": results["machine"]["cpu"], "date": results["machine"]["date"]}
                harness.log(f"{clip.stem} {mode}: {row}")
            results["clips"][clip.stem] = rows
            harness.write_results(args.out, results)
    harness.log(f"wrote {harness.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
