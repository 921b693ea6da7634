"""``--precision auto`` on CPU: measure whether bf16 autocast is really faster here, once per machine.

bf16 is 4x faster than fp32 for VGG-19 on a Xeon with AMX, slower for EfficientNet-Lite0 on the same
machine (its depthwise convolutions), and slower everywhere on a CPU without bf16 instructions. So
``auto`` times a few forward and backward passes of the network at a mid size in both precisions and
keeps bf16 only if it is clearly faster and its loss stays within a few percent of fp32's. The answer
is cached per processor, torch version and network in ``~/.cache/dreamstyle/precision.json`` (or
``$DREAMSTYLE_CACHE``), so only the first run on a machine pays the second or two it takes.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backbones import FeatureExtractor
from pathlib import Path

import torch

SIZE = 320  # pixels: a mid pyramid level
REPEATS = 4
FASTER = 0.85  # bf16 must take at most this share of fp32's time
LOSS_TOLERANCE = 0.05  # and give a loss within this relative difference
METHOD = 2  # how it measures; a cached answer from another method is measured again (1 favoured bf16)


def cache_path() -> Path:
    root = os.environ.get("DREAMSTYLE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dreamstyle")
    return Path(root) / "precision.json"


def processor() -> str:
    """The processor's model name and its bf16-relevant flags (what decides bf16 speed)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name in ("", platform.machine(), platform.processor()):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    marks = [f for f in ("amx_bf16", "avx512_bf16", "avx512f") if f in flags]
    return f"{name} [{' '.join(marks) or 'no avx512'}]"


def _key(model: str, weights: str | None) -> str:
    return f"{processor()} | torch {torch.__version__} | {model}{'' if weights is None else ' ' + str(weights)}"


def _read() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(data: dict) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: calibrate again next time


def measure(run: Callable[[str], float]) -> dict:
    """Time ``run(precision) -> loss`` for fp32 and bf16: a warm-up of each, then REPEATS rounds that
    alternate the two, keeping each one's best time. Measuring one precision after the other favoured
    whichever came second: in a fresh process the first one still paid start-up costs after its warm-up
    (Lite0 on a Zen 5 EPYC chose bf16 at 0.77x fp32's time, then fp32 at 0.88-1.01x in the same process)."""
    precisions = ("fp32", "bf16")
    for precision in precisions:
        run(precision)  # warm-up: first-call costs
    times: dict[str, list[float]] = {p: [] for p in precisions}
    loss = dict.fromkeys(precisions, 0.0)
    for _ in range(REPEATS):
        for precision in precisions:
            start = time.perf_counter()
            loss[precision] = run(precision)
            times[precision].append(time.perf_counter() - start)
    return {p: {"seconds": min(times[p]), "loss": loss[p]} for p in precisions}


def choose(measured: dict) -> str:
    fp32, bf16 = measured["fp32"], measured["bf16"]
    close = abs(bf16["loss"] - fp32["loss"]) <= LOSS_TOLERANCE * max(abs(fp32["loss"]), 1e-12)
    return "bf16" if close and bf16["seconds"] <= FASTER * fp32["seconds"] else "fp32"


def cpu_precision(model: str, weights: str | None, make_extractor: Callable[[], FeatureExtractor]) -> str:
    """The precision ``auto`` means for this network on this CPU: cached, or measured now on the extractor
    ``make_extractor()`` builds (only then: the run's own taps; its ``precision`` attribute is switched
    while measuring). ``DREAMSTYLE_CPU_PRECISION=fp32|bf16`` skips the measurement."""
    fixed = os.environ.get("DREAMSTYLE_CPU_PRECISION")
    if fixed in ("fp32", "bf16"):
        return fixed
    key = _key(model, weights)
    data = _read()
    if key in data and data[key].get("choice") in ("fp32", "bf16") and data[key].get("method") == METHOD:
        return data[key]["choice"]
    extractor = make_extractor()
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, SIZE, SIZE, generator=generator)
    original = getattr(extractor, "precision", "fp32")

    def run(precision: str) -> float:
        x = image.clone().requires_grad_(True)
        extractor.precision = precision
        feats = extractor(x)
        loss = torch.stack([f.pow(2).mean() for f in feats.values()]).sum()
        loss.backward()
        return float(loss.detach())

    try:
        measured = measure(run)
    except RuntimeError:  # bf16 not supported by this build or processor
        measured = {"fp32": {"seconds": 1.0, "loss": 0.0}, "bf16": {"seconds": float("inf"), "loss": 0.0}}
    finally:
        extractor.precision = original
    choice = choose(measured)
    data[key] = {"choice": choice, **measured, "size": SIZE, "method": METHOD,
                 "measured": time.strftime("%Y-%m-%d %H:%M")}
    _write(data)
    return choice
