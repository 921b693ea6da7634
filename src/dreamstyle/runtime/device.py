"""Resolving the device and the precision, and autocast: torch's side of the runtime."""

from __future__ import annotations

import contextlib

import torch

from ..errors import SettingError, check_choice
from .options import DEVICES, PRECISIONS

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device that is absent is an error."""
    check_choice("device", name, DEVICES)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingError("device", "cuda was asked for but no CUDA GPU is available; use {device} cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingError("device", "mps was asked for but MPS is not available; use {device} cpu")
    return torch.device(name)


def check_precision(precision: str) -> torch.dtype | None:
    check_choice("precision", precision, PRECISIONS)
    return _DTYPES.get(precision)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 on CUDA GPUs that support it, else fp32.

    On CPU, bf16 autocast was no faster for the default network on an AVX-512-BF16 machine
    (see BENCHMARKS.md), so auto stays fp32 there; ask for bf16 explicitly to try it.
    """
    check_precision(precision)
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def defer_dynamo() -> None:
    """For the command line: build torch.optim optimizers without importing torch._dynamo.

    ``Optimizer.add_param_group`` and ``zero_grad`` are wrapped so that torch.compile skips them, and
    that wrapper imports torch._dynamo (about 1.4 s) on first use, which the default L-BFGS run never
    needs. Marking them as already handled skips the import. Only dreamstyle's own processes do this
    (the ``dreamstyle`` command and its local pool's workers), never the library inside someone else's
    program (nor a Ray worker, which may run other code): a program that compiles its own optimizer code
    keeps torch as it is."""
    import sys

    if "torch._dynamo" in sys.modules:
        return
    for name in ("add_param_group", "zero_grad"):
        raw = getattr(getattr(torch.optim.Optimizer, name, None), "__wrapped__", None)
        if raw is not None and not hasattr(raw, "__dynamo_disable"):
            raw.__dynamo_disable = raw


def prepare_cpu() -> None:
    """Flush denormal floats to zero: long CPU runs otherwise slow down up to 40x as values shrink."""
    torch.set_flush_denormal(True)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for the network's forward pass; fp32 means none."""
    dtype = check_precision(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
