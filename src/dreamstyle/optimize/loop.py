"""The optimization loop, and pixel optimization on it. It knows nothing about style.

``descend`` is the one loop every optimization runs on: image optimization (``optimize_image``), Deep Dream's
ascent (``ascent.ascend``), explore's feature visualization and training a style network. It owns the
step: the closure the optimizer calls, the NaN guard, and the report after each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import RunError, SettingError, check_choice
from .options import OPTIMIZERS

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
StepCallback = Callable[[int, float, dict[str, float], torch.Tensor], None]
Evaluate = Callable[[], tuple["torch.Tensor | float", dict[str, float]]]  # one step's loss and its parts
Report = Callable[[int, float, dict[str, float]], None]
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
LBFGS_HISTORY = 50  # the curvature pairs L-BFGS keeps


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
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=LBFGS_HISTORY, tolerance_grad=-1,
                                 tolerance_change=-1)
    return torch.optim.Adam(params, lr=lr)


def descend(optimizer: torch.optim.Optimizer, evaluate: Evaluate, steps: Iterable[int],
            on_step: Report | None = None, fix: str = LOSS_FIX,
            after_step: Callable[[int], None] | None = None) -> None:
    """Run ``optimizer`` for ``steps`` (the step numbers, e.g. ``range(1, n + 1)``).

    At each step the optimizer's closure clears the gradients, calls ``evaluate()`` for the loss and its
    parts, stops with a one-line RunError (ending in ``fix``) when the loss is NaN or infinite, before any
    update, and back-propagates it. A loss given as a float, or as a tensor without a graph, means that
    ``evaluate`` has set the gradients itself (Deep Dream's tiles). Then ``after_step(step)`` (a projection)
    and ``on_step(step, loss, parts)``. Ctrl-C and other interruptions propagate to the caller.
    """
    seen: dict[str, Any] = {}
    for step in steps:
        def closure(step: int = step) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss, parts = evaluate()
            value = check_finite(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss), step, fix)
            if isinstance(loss, torch.Tensor) and loss.requires_grad:
                loss.backward()
            seen["value"], seen["parts"] = value, parts
            return loss if isinstance(loss, torch.Tensor) else torch.tensor(value)

        optimizer.step(closure)  # type: ignore[arg-type]  # every optimizer here takes a closure
        if after_step is not None:
            after_step(step)
        if on_step is not None:
            on_step(step, seen["value"], seen["parts"])


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
    ema = init.detach().clone() if average else None

    def evaluate() -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = loss_fn(image)
        value = float(loss.detach())
        if value < best.loss:  # keep-best: the image this loss belongs to, before the step moves it
            best.loss, best.image = value, image.detach().clamp(0, 1).clone()
        return loss, parts

    def project(step: int) -> None:
        with torch.no_grad():  # projected steps: the loss is always that of a showable image
            image.clamp_(0, 1)
        best.iterations = step
        if ema is not None:
            ema.mul_(average).add_(image.detach().clamp(0, 1), alpha=1 - average)

    def report(step: int, value: float, parts: dict[str, float]) -> None:
        best.history.append(value)
        if on_step is not None:
            on_step(step, value, parts, image.detach())

    try:
        descend(opt, evaluate, range(1, iterations + 1), report, after_step=project)
    except KeyboardInterrupt as exc:
        best.interrupted, best.stop = True, exc
    if ema is not None and best.iterations:
        best.image = ema.clamp(0, 1)
    return best
