"""The pixel-optimization loop. It knows nothing about style: it minimizes a callable of the image."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import RunError, SettingError, check_choice
from .options import OPTIMIZERS

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
StepCallback = Callable[[int, float, dict[str, float], torch.Tensor], None]
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


@dataclass
class Result:
    image: torch.Tensor  # the best image seen (lowest loss), clamped to [0, 1]
    loss: float
    iterations: int  # steps taken
    interrupted: bool = False
    history: list[float] = field(default_factory=list)
    stop: KeyboardInterrupt | None = None  # what interrupted it (Ctrl-C, SIGTERM, a cancel token)


def check_settings(name: str, lr: float | None = None, average: float = 0.0) -> float:
    """Check the optimizer name, step size and averaging decay; return the step size to use."""
    check_choice("optimizer", name, OPTIMIZERS)
    lr = DEFAULT_LR[name] if lr is None else lr
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise SettingError("lr", f"must be a number > 0, got {lr}")
    if not 0 <= average < 1:
        raise SettingError("ema", f"must be in [0, 1), got {average}")
    return lr


LOSS_FIX = "lower --lr or the loss weights (with --precision bf16/fp16, also try fp32)"


def check_finite(value: float, step: int, fix: str = LOSS_FIX) -> float:
    """``value`` (a loss or a score), or a one-line RunError naming the step when it is NaN or infinite. Every
    optimization loop checks here: image optimization, Deep Dream's ascent, explore and training."""
    if not math.isfinite(value):
        raise RunError(f"the loss became {value} at step {step}; {fix}")
    return value


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None = None) -> torch.optim.Optimizer:
    lr = check_settings(name, lr)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=50, tolerance_grad=-1,
                                 tolerance_change=-1)
    return torch.optim.Adam(params, lr=lr)


def optimize_image(init: torch.Tensor, loss_fn: LossFn, iterations: int, optimizer: str = "lbfgs",
                   lr: float | None = None, on_step: StepCallback | None = None, average: float = 0.0) -> Result:
    """Minimize ``loss_fn`` over the pixels of ``init`` (1, 3, H, W in [0, 1]).

    Keeps the lowest-loss image, stops with RunError on a NaN/Inf loss, and on Ctrl-C returns
    what it has with ``interrupted=True`` instead of losing the work. ``average`` > 0 turns on
    iterate averaging: the result is an exponential moving average of the iterates with that
    decay (smoother results with Adam, as in crowsonkb/style-transfer-pytorch).
    """
    check_settings(optimizer, lr, average)
    image = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    opt = make_optimizer(optimizer, [image], lr)
    best = Result(init.detach().clamp(0, 1), math.inf, 0)
    state: dict = {}
    ema = init.detach().clone() if average else None

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss, parts = loss_fn(image)
        value = check_finite(float(loss.detach()), best.iterations + 1)
        loss.backward()
        if value < best.loss:
            best.loss, best.image = value, image.detach().clamp(0, 1).clone()
        state["value"], state["parts"] = value, parts
        return loss

    try:
        for step in range(1, iterations + 1):
            opt.step(closure)  # type: ignore[arg-type]  # LBFGS's closure returns the loss tensor
            with torch.no_grad():  # projected steps: the loss is always that of a showable image
                image.clamp_(0, 1)
            best.iterations = step
            if ema is not None:
                ema.mul_(average).add_(image.detach().clamp(0, 1), alpha=1 - average)
            best.history.append(state["value"])
            if on_step is not None:
                on_step(step, state["value"], state["parts"], image.detach())
    except KeyboardInterrupt as exc:
        best.interrupted, best.stop = True, exc
    if ema is not None and best.iterations:
        best.image = ema.clamp(0, 1)
    return best
