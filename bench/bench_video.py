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

``--memory`` measures peak memory instead (no timings): apply mode over each whole clip and over its
first 10 frames, and over a 2-minute 720p clip made by looping Big Buck Bunny's packets (no re-encoding),
each in a fresh interpreter that reports its own high-water mark (VmHWM). Frames stream through the run,
so the whole clip should peak where its first 10 frames do.

    python bench/bench_video.py [--modes apply,stylize,dream] [--size 512]
    OMP_NUM_THREADS=1 python bench/bench_video.py --memory [--size 512] [--long-size 256] [--long-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
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


# A fresh interpreter runs one video (apply mode) and reports its own peak resident memory: VmHWM (the
# parent's memory at the fork would count in ru_maxrss).
PEAK = r"""
import json, sys
import dreamstyle
source, out, size, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dreamstyle.video(source, out, size=size, end=None if end == "-" else float(end), progress=False,
                 model="starry_night")
from dreamstyle.animation import count_frames
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
print(json.dumps({"peak_mib": round(peak, 1), "frames": count_frames(out)}))
"""


def peak_memory(source: Path, out: Path, size: int, end: float | None) -> dict:
    proc = subprocess.run([sys.executable, "-c", PEAK, str(source), str(out), str(size), "-" if end is None
                           else str(end)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{source.name}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def looped_clip(source: Path, seconds: float, path: Path) -> Path:
    """``source``'s video packets repeated (timestamps shifted, not re-encoded) to at least ``seconds``."""
    import av

    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.size]
        tick = round(1 / (stream.average_rate * stream.time_base))
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + tick
        with av.open(str(path), "w") as dst:
            out = dst.add_stream_from_template(stream)
            for k in range(math.ceil(seconds / float(span * stream.time_base))):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.duration, q.time_base = p.pts + k * span, p.dts + k * span, p.duration, p.time_base
                    q.is_keyframe, q.stream = p.is_keyframe, out
                    dst.mux(q)
    return path


def memory(args: argparse.Namespace) -> None:
    """Peak memory of apply mode, whole clips against their first 10 frames."""
    import av

    results: dict = {"mode": "apply", "model": "starry_night", "size": args.size, "long_size": args.long_size,
                     "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = [(c, args.size, None) for c in sorted(CLIPS.glob("*.mp4"))]
        if not clips:
            harness.log(f"no clips in {CLIPS}; only the looped clip needs one too, so nothing to measure")
            return
        bunny = CLIPS / "bigbuckbunny.mp4"
        if bunny.is_file() and args.long_seconds > 0:
            clips.append((looped_clip(bunny, args.long_seconds, work / "bunny_loop.mp4"), args.long_size,
                          args.long_seconds))
        for clip, size, end in clips:
            with av.open(str(clip)) as c:
                stream = c.streams.video[0]
                rate = float(stream.average_rate)
                source = f"{stream.codec_context.width}x{stream.codec_context.height}"
            ten = 10 / rate  # the first 10 frames' seconds
            row = {"source": source, "fps": round(rate, 3), "size": size,
                   "whole": peak_memory(clip, work / f"{clip.stem}_whole.mp4", size, end),
                   "first_10_frames": peak_memory(clip, work / f"{clip.stem}_10.mp4", size, ten - 0.5 / rate)}
            row["growth_mib"] = round(row["whole"]["peak_mib"] - row["first_10_frames"]["peak_mib"], 1)
            results["clips"][clip.stem] = row
            harness.log(f"{clip.stem}: {row}")
    harness.log(f"wrote {harness.write_results(args.memory_out, results)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="apply,stylize,dream")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_video.json")
    parser.add_argument("--memory", action="store_true", help="peak memory instead of flicker and speed")
    parser.add_argument("--long-size", type=int, default=256, help="--size of the looped 2-minute clip")
    parser.add_argument("--long-seconds", type=float, default=120.0, help="length of the looped clip (0: none)")
    parser.add_argument("--memory-out", type=Path, default=ROOT / "bench" / "results_video_memory.json")
    args = parser.parse_args()
    if args.memory:
        memory(args)  # before torch is imported here
        return
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
