"""The ``dreamstyle`` commands: each takes the parsed arguments, calls :mod:`dreamstyle.api` and returns an
exit code. torch is imported only by the commands that run a network."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..events import raise_if_signalled
from ..settings import (
    ZoomSettings,
    flag_of,
    options,
)

_RUN_ARGS = ("command", "show_params", "output", "quiet", "content", "styles", "photo", "sweep", "style", "images",
             "source", "inputs")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _RUN_ARGS}


def _torch_can_load() -> None:
    """Refuse in one line when torch cannot load under this process's address-space limit (``ulimit -v``).

    Importing torch maps several GiB of libraries (3.1 GiB of address space for torch 2.14's CUDA build, even
    on a CPU machine): below that, the import fails with an ImportError or, just below, aborts the whole
    process from a C++ std::bad_alloc that no handler can catch. So under a limit, a child process tries the
    import first; without one (or one of 16 GiB or more) this costs nothing.
    """
    if "torch" in sys.modules:
        return
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY or limit >= 16 * 2**30:
            return
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return
    import subprocess

    try:
        probe = subprocess.run([sys.executable, "-c", "import torch"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        loads = probe.returncode == 0
    except (OSError, subprocess.SubprocessError):
        loads = False  # not even a child process could start under the limit
    if not loads:
        from ..errors import RunError

        raise RunError(f"torch cannot load under this process's address-space limit (ulimit -v {limit // 1024}, "
                       f"{limit / 2**30:.1f} GiB): it maps about 3-4 GiB of libraries; raise the limit, or run "
                       "without one")


def _optimizing() -> None:
    """Before a command that optimizes: torch can load, and its optimizers need not import torch._dynamo."""
    _torch_can_load()
    from ..runtime import defer_dynamo

    defer_dynamo()


def _cmd_stylize(args: argparse.Namespace) -> int:
    _optimizing()
    from ..api import stylize

    stylize(args.content, args.styles, output=args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_sheet(args: argparse.Namespace) -> int:
    _optimizing()
    from ..api import sheet

    sheet(args.content, args.styles, args.sweep, args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_dream(args: argparse.Namespace) -> int:
    _optimizing()
    from ..api import dream, dream_zoom

    values = _settings(args)
    if "frames" in values:
        values.setdefault("size", None)  # the command line's zoom keeps the photo's size unless --size is given
        dream_zoom(args.photo, args.output, progress=not args.quiet, **values)
    else:
        zoom_only = sorted(set(values) & {f.name for f, _ in options(ZoomSettings)})
        if zoom_only:
            from ..errors import UserError

            raise UserError(f"{flag_of(ZoomSettings, zoom_only[0])} needs --zoom FRAMES")
        dream(args.photo, output=args.output, progress=not args.quiet, **values)
    return _wrote(args)


def _cmd_explore(args: argparse.Namespace) -> int:
    _optimizing()
    from ..api import explore

    explore(output=args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_train(args: argparse.Namespace) -> int:
    _optimizing()
    from ..api import train

    quiet = args.quiet or os.environ.get("RANK", "0") != "0"  # under torchrun, rank 0 alone shows progress
    model = train(args.style, args.output, progress=not quiet, **_settings(args))
    if not quiet:
        print(f"wrote {args.output} ({model.meta.get('steps')} steps, {model.meta.get('seconds')} s)", file=sys.stderr)
    return 0


def _needs_torch(model: str, device: str) -> bool:
    """Whether applying ``model`` runs under torch (a .pt file, or a GPU) rather than onnxruntime alone."""
    return device not in ("auto", "cpu") or str(model).lower().endswith((".pt", ".pth"))


def _cmd_apply(args: argparse.Namespace) -> int:
    if getattr(args, "style_image", None) is not None or _needs_torch(getattr(args, "model", ""),
                                                                      getattr(args, "device", "auto")):
        _torch_can_load()
    from ..api import apply

    results = apply(args.images, output=args.output, progress=not args.quiet, **_settings(args))
    if not args.quiet:
        print(f"wrote {args.output}" + (f" ({len(results)} images)" if len(results) > 1 else ""), file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    _torch_can_load()
    from ..api import export

    for r in export(args.source, args.output, progress=not args.quiet, **_settings(args)):
        print(f"wrote {r.path} ({r.variant}, {r.bytes / 1024:.0f} KB): largest difference from PyTorch "
              f"{r.max_abs_diff:.2g} (mean {r.mean_abs_diff:.2g}) on a 0-1 scale")
    return 0


def _cmd_video(args: argparse.Namespace) -> int:
    if getattr(args, "mode", "apply") != "apply" or getattr(args, "style_images", None) \
            or _needs_torch(getattr(args, "model", ""), getattr(args, "device", "auto")):
        _optimizing()
    from ..api import video

    video(args.source, args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_batch(args: argparse.Namespace) -> int:
    if getattr(args, "mode", "apply") != "apply" or getattr(args, "style_images", None) \
            or _needs_torch(getattr(args, "model", ""), getattr(args, "device", "auto")):
        _optimizing()
    from ..api import batch

    report = batch(args.inputs, args.output, progress=not args.quiet, **_settings(args))
    for where, error in report.failed:
        print(f"dreamstyle: error: {where} failed: {error}", file=sys.stderr)
    if not args.quiet:
        skipped = f", {report.skipped} already done" if report.skipped else ""
        failed = f", {len(report.failed)} failed" if report.failed else ""
        print(f"wrote {len(report.written)} of {report.total} jobs in {args.output}{skipped}{failed}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve  # without the [studio] extra, errors.message_for says how to install it

    raise_if_signalled()  # a signal during the imports: do not start serving
    serve(args.host, args.port)
    return 0


def _wrote(args: argparse.Namespace) -> int:
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from ..backbones import DEFAULT_BACKBONE, get_spec, list_taps

    if args.model is not None and not args.model.strip():
        from ..errors import UserError

        raise UserError("the model name is empty; give a network (see `dreamstyle models`), or leave it out for "
                        f"the default, {DEFAULT_BACKBONE}")
    spec = get_spec(args.model or DEFAULT_BACKBONE)
    rows: list[dict[str, Any]] = []
    for tap in list_taps(spec):
        role = [r for r, taps in (("style", spec.style_taps), ("content", spec.content_taps)) if tap.name in taps]
        rows.append({"name": tap.name, "channels": tap.channels, "stride": tap.stride, "min_side": tap.min_side,
                     "default": role})
    if args.json:
        print(json.dumps({"model": spec.name, "taps": rows}, indent=1))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            note = f"  default {'+'.join(r['default'])}" if r["default"] else ""
            print(f"{r['name']:<{width}}  {r['channels']:>5}  {r['stride']:>4}{note}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from ..backbones import DEFAULT_BACKBONE, SPECS
    from ..fastnet import bundled_styles
    from ..fastnet.styles import cache_dir, cached_styles, clear_cached

    if args.clear:
        count, freed = clear_cached()
        print(f"removed {count} file(s) ({freed / 2**20:.1f} MiB) from {cache_dir()}")
        return 0
    print("networks (stylize, dream, explore, and the loss network of train):")
    for name, spec in SPECS.items():
        mark = " (default)" if name == DEFAULT_BACKBONE else ""
        print(f"  {name:<20} {spec.description}{mark}")
    print("bundled styles (apply --model NAME, export, train --init):")
    for name in bundled_styles() or ["(none installed)"]:
        print(f"  {name}")
    cached = cached_styles()
    print(f"fast styles of your paintings (apply --style PAINTING; in {cache_dir()}; --clear removes them):")
    for entry in cached:
        took = f", {entry['seconds']:.0f} s" if isinstance(entry.get("seconds"), (int, float)) else ""
        print(f"  {entry.get('painting', '?')}: {entry.get('steps', '?')} steps{took}  {entry['file']}")
    if not cached:
        print("  (none yet)")
    return 0


def show_params(path: str) -> int:
    from ..images import read_params

    print(json.dumps(read_params(path), indent=2))
    return 0


COMMANDS = {"stylize": _cmd_stylize, "sheet": _cmd_sheet, "layers": _cmd_layers, "models": _cmd_models,
            "dream": _cmd_dream, "explore": _cmd_explore, "train": _cmd_train, "apply": _cmd_apply,
            "export": _cmd_export, "serve": _cmd_serve, "video": _cmd_video, "batch": _cmd_batch}
