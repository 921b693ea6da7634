"""What a run checks before any slow work, without its images: the studio checks each job with it at
submission, so that a bad setting is refused at once instead of failing in the queue."""

from __future__ import annotations

from typing import Any


def precheck(mode: str, s: Any) -> None:
    """The checks a run's prepare makes before any slow work, without its images: the device (``cuda`` on a
    machine without one), tap names, dream targets, the optimizer. Imports torch."""
    from ..runtime import resolve_device

    if mode == "apply":
        if s.device not in ("auto", "cpu"):  # a .pt model's device; bundled styles and .onnx run on the CPU
            resolve_device(s.device)
        return
    from ..backbones import get_spec, min_side

    resolve_device(s.device)
    spec = get_spec(s.model)
    if mode == "stylize":
        import warnings

        from ..optimize import check_settings
        from ..settings import parse_taps
        from .stylize import resolve_dream_targets

        check_settings(s.optimizer, s.lr, s.ema)
        used = [*(parse_taps(s.style_layers, "style_layers") or dict(spec.style_taps)),
                *(parse_taps(s.content_layers, "content_layers") or dict(spec.content_taps))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the job warns, in the server's log
            dream = resolve_dream_targets(s.dream, s.model, used, s.force)
        min_side(spec, [*used, *(t.tap for t in dream)])  # checks every tap name
    elif mode == "dream":
        from ..objectives.dream import parse_targets

        min_side(spec, [t.tap for t in parse_targets(s.targets, s.model)])
    elif s.tap:
        min_side(spec, [s.tap])
