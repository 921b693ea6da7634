"""The ``dreamstyle`` command: options generated from :mod:`dreamstyle.settings`, runs through :mod:`dreamstyle.api`.

Starts without importing torch (``--help``, ``--version``, ``--show-params``, ``models``, ``layers``);
a run imports it when it starts. Errors become one line on stderr and an exit code: 2 for bad input,
1 for a failed run, 130 for Ctrl-C and 143 for SIGTERM (both keep the best result so far).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..events import install_signal_handlers, raise_if_signalled, restore_signal_handlers, stopped_by_sigterm
from ..settings import COMMANDS as SETTINGS_OF
from ..settings import (
    VIDEO_MODES,
    ApplySettings,
    DreamSettings,
    ExploreSettings,
    ExportSettings,
    Opt,
    StylizeSettings,
    TrainSettings,
    VideoSettings,
    ZoomSettings,
    check_value,
    flag_of,
    options,
)

_SUPPRESS = argparse.SUPPRESS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def _onoff(text: str) -> bool:
    if text in ("on", "off"):
        return text == "on"
    raise argparse.ArgumentTypeError(f"expected on or off, got '{text}'")


def _channels(text: str) -> list[int]:
    try:
        channels = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected channel numbers such as 0,5,12, got '{text}'") from None
    if not channels or min(channels) < 0:
        raise argparse.ArgumentTypeError(f"expected channel numbers >= 0 such as 0,5,12, got '{text}'")
    return channels


_TYPES: dict[str, Callable[[str], Any]] = {"int": _int, "float": _number, "floats": _number, "channels": _channels}


def _checked(name: str, o: Opt) -> Callable[[str], Any]:
    """Parse one value and check it against its setting at once, so a later repeat cannot hide a bad one."""
    parse = _TYPES.get(o.kind, str)

    def convert(text: str) -> Any:
        from ..errors import SettingError, UserError

        value = parse(text)
        try:
            check_value(name, o, [value] if o.kind == "floats" else value)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value
    return convert


def _help(o: Opt, default: Any) -> str:
    shown = o.default_text or ("on" if default is True else "off" if default is False and o.onoff else default)
    return o.help if shown is None or (default is False and not o.onoff) else f"{o.help} (default: {shown})"


def add_settings(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One option per setting of ``cls``. Options not given are left out of the namespace, so the API's
    defaults (the settings') apply: they exist once."""
    for f, o in options(cls):
        if not o.cli or f.name in skip:
            continue
        kwargs: dict[str, Any] = dict(dest=f.name, default=_SUPPRESS, help=_help(o, f.default))
        if o.metavar or o.kind in ("int", "float"):
            kwargs["metavar"] = o.metavar or {"int": "N", "float": "X"}[o.kind]
        if o.kind == "bool" and not o.onoff:
            kwargs["action"] = "store_true"
        elif o.kind == "bool":
            kwargs.update(type=_onoff, metavar="on|off")
        elif o.kind == "choice":
            kwargs["choices"] = list(o.choices)
        else:
            kwargs["type"] = _checked(f.name, o)
        if o.many:
            kwargs["nargs"] = "+"
        parser.add_argument(flag_of(cls, f.name), **kwargs)


def build_parser(video_mode: str = "apply") -> argparse.ArgumentParser:
    """The whole command line; ``video`` takes the options of ``video_mode`` (apply, stylize or dream)."""
    parser = _Parser(prog="dreamstyle", description="Neural image stylization: style transfer, Deep Dream, "
                     "networks and their taps.")
    parser.add_argument("--version", action="version", version=f"dreamstyle {__version__}")
    parser.add_argument("--show-params", metavar="IMAGE", help="print the parameters stored in a dreamstyle output")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("stylize", help="style transfer by optimization (Gatys et al.)",
                       description="Paint CONTENT in the style of one or more STYLE images.")
    s.add_argument("content")
    s.add_argument("styles", nargs="+", metavar="style")
    s.add_argument("-o", "--output", required=True, help="output image (.png keeps the parameters)")
    add_settings(s, StylizeSettings)
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    sh = sub.add_parser("sheet", help="a labelled contact sheet of a parameter sweep",
                        description="Stylize once per combination of the --sweep values and lay the results "
                                    "out in one labelled image, e.g. --sweep style-weight=1e2,1e3,1e4 "
                                    "--sweep model=efficientnet_lite0,squeezenet1_0")
    sh.add_argument("content")
    sh.add_argument("styles", nargs="+", metavar="style")
    sh.add_argument("-o", "--output", required=True, help="the sheet image")
    sh.add_argument("--sweep", action="append", required=True, metavar="NAME=V1,V2,...",
                    help="a stylize option and its values; give one or more")
    add_settings(sh, StylizeSettings, skip=("save_every",))
    sh.add_argument("--quiet", action="store_true", help="no progress bar")

    layers = sub.add_parser("layers", help="list a network's taps: name, channels, stride")
    layers.add_argument("model", nargs="?", default=None)
    layers.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("models", help="list the available networks")

    d = sub.add_parser("dream", help="Deep Dream: amplify what a network sees in an image",
                       description="Amplify the patterns the chosen taps/channels respond to, over several octaves.")
    d.add_argument("photo", metavar="image")
    d.add_argument("-o", "--output", required=True, help="output image, or .gif/.mp4 with --zoom")
    add_settings(d, DreamSettings)
    add_settings(d, ZoomSettings)
    d.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("explore", help="see what a tap's channels respond to",
                       description="A labelled grid, one cell per channel: a picture optimized to excite it, "
                                   "or with --image, the image's most active channels and where they fire.")
    e.add_argument("model", nargs="?", default=_SUPPRESS, help="the network (default: efficientnet_lite0)")
    e.add_argument("-o", "--output", required=True, help="the grid image")
    add_settings(e, ExploreSettings, skip=("model",))
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    for name, cls, help_, description, positional, output_help in (
            ("train", TrainSettings, "train a fast feed-forward network for one painting (Johnson et al.)",
             "Train a style network on a folder of photos; --init fine-tunes a bundled or trained model in "
             "minutes. -o is also the checkpoint (--resume continues it).", ("style", "painting", None),
             "the model file (.pt)"),
            ("apply", ApplySettings, "stylize photos with a trained network, in a blink",
             "Apply a bundled style (see `dreamstyle models`), a .pt model or an .onnx file to images or folders "
             "of images.", ("images", "image", "+"), "output image, or a folder for several"),
            ("export", ExportSettings, "export a trained network to ONNX for phones and browsers",
             "Write an ONNX file with a dynamic height and width and the model's metadata, and check "
             "onnxruntime's output against PyTorch's.", ("source", "model", None), None),
            ("video", VideoSettings, "a video through a trained style, style transfer or Deep Dream, without "
             "flicker", f"Each frame of a video (MP4, GIF or a folder of frames), tied to the last by optical flow. "
             f"--mode {video_mode} takes the options below; see `dreamstyle video --mode MODE --help` for the "
             "others'. Rerun the same command to continue an interrupted run.",
             ("source", "video", None), "the output: .mp4 (keeps the audio), .gif, or a new folder of frames")):
        p = sub.add_parser(name, help=help_, description=description)
        dest, metavar, nargs = positional
        p.add_argument(dest, metavar=metavar, nargs=nargs)
        if output_help:
            p.add_argument("-o", "--output", required=True, help=output_help)
        else:
            p.add_argument("--onnx", dest="output", required=True, metavar="OUT.onnx", help="the ONNX file to write")
        add_settings(p, cls)
        if cls is VideoSettings:
            add_settings(p, VIDEO_MODES[video_mode])
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser("serve", help="the local web studio: stylize, apply, dream and explore in the browser",
                       description="Serve the studio page on this machine (127.0.0.1 unless --host).")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    v.add_argument("--port", type=_int, default=8000, help="port (default: 8000)")
    return parser


# --- commands ------------------------------------------------------------------------------------

_RUN_ARGS = ("command", "show_params", "output", "quiet", "content", "styles", "photo", "sweep", "style", "images",
             "source")


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


def _cmd_stylize(args: argparse.Namespace) -> int:
    _torch_can_load()
    from ..api import stylize
    from ..runtime import defer_dynamo

    defer_dynamo()
    stylize(args.content, args.styles, output=args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_sheet(args: argparse.Namespace) -> int:
    _torch_can_load()
    from ..api import sheet
    from ..runtime import defer_dynamo

    defer_dynamo()
    sheet(args.content, args.styles, args.sweep, args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_dream(args: argparse.Namespace) -> int:
    _torch_can_load()
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
    _torch_can_load()
    from ..api import explore

    explore(output=args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_train(args: argparse.Namespace) -> int:
    _torch_can_load()
    from ..api import train

    model = train(args.style, args.output, progress=not args.quiet, **_settings(args))
    if not args.quiet:
        print(f"wrote {args.output} ({model.meta.get('steps')} steps, {model.meta.get('seconds')} s)", file=sys.stderr)
    return 0


def _needs_torch(model: str, device: str) -> bool:
    """Whether applying ``model`` runs under torch (a .pt file, or a GPU) rather than onnxruntime alone."""
    return device not in ("auto", "cpu") or str(model).lower().endswith((".pt", ".pth"))


def _cmd_apply(args: argparse.Namespace) -> int:
    if _needs_torch(getattr(args, "model", ""), getattr(args, "device", "auto")):
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
    if getattr(args, "mode", "apply") != "apply" or _needs_torch(getattr(args, "model", ""),
                                                                  getattr(args, "device", "auto")):
        _torch_can_load()
    from ..api import video

    video(args.source, args.output, progress=not args.quiet, **_settings(args))
    return _wrote(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .serve import serve
    except ImportError as exc:
        from ..errors import UserError

        raise UserError(f"the studio needs {exc.name}: pip install fastapi uvicorn python-multipart") from None
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

    print("networks (stylize, dream, explore, and the loss network of train):")
    for name, spec in SPECS.items():
        mark = " (default)" if name == DEFAULT_BACKBONE else ""
        print(f"  {name:<20} {spec.description}{mark}")
    print("bundled styles (apply --model NAME, export, train --init):")
    for name in bundled_styles() or ["(none installed)"]:
        print(f"  {name}")
    return 0


def _show_params(path: str) -> int:
    from ..images import read_params

    print(json.dumps(read_params(path), indent=2))
    return 0


def _show_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None,
                  line: Any = None) -> None:
    print(f"dreamstyle: warning: {message}", file=sys.stderr)


COMMANDS = {"stylize": _cmd_stylize, "sheet": _cmd_sheet, "layers": _cmd_layers, "models": _cmd_models,
            "dream": _cmd_dream, "explore": _cmd_explore, "train": _cmd_train, "apply": _cmd_apply,
            "export": _cmd_export, "serve": _cmd_serve, "video": _cmd_video}


def _flag_namer(command: str | None) -> Callable[[str], str]:
    """Setting name -> this command's flag, for re-wording the API's messages."""
    def name(setting: str) -> str:
        for cls in SETTINGS_OF.get(command or "", ()):
            if any(f.name == setting for f, _ in options(cls)):
                return "MODEL" if command == "explore" and setting == "model" else flag_of(cls, setting)
        return "--" + setting.replace("_", "-")
    return name


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _video_mode(argv: Sequence[str]) -> str:
    """The --mode of a ``video`` command line (its options depend on it); apply if none or not valid."""
    if "video" not in argv:
        return "apply"
    mode = "apply"
    for i, arg in enumerate(argv):
        if arg == "--mode" and i + 1 < len(argv):
            mode = argv[i + 1]
        elif arg.startswith("--mode="):
            mode = arg.partition("=")[2]
    return mode if mode in VIDEO_MODES else "apply"  # argparse then refuses a wrong mode in one line


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit code. SIGINT and SIGTERM stop the run while it lasts (their
    handlers are put back afterwards, for callers in a longer-lived process)."""
    previous = install_signal_handlers()
    try:
        return _main(argv)
    finally:
        restore_signal_handlers(previous)


def _main(argv: Sequence[str] | None = None) -> int:
    from ..errors import DreamstyleError, SettingError
    from ..events import Interrupted

    warnings.showwarning = _show_warning
    command = None
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(_video_mode(argv))
        args = parser.parse_args(argv)
        command = args.command
        if args.show_params:
            code = _show_params(args.show_params)
        elif args.command is None:
            parser.print_help()
            return 2
        else:
            code = COMMANDS[args.command](args)
        raise_if_signalled()  # one held during an import, or swallowed by a library: the run did not finish
        return code
    except SettingError as exc:
        print(f"dreamstyle: error: {exc.render(_flag_namer(command))}", file=sys.stderr)
        return exc.exit_code
    except DreamstyleError as exc:
        print(f"dreamstyle: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        code = 143 if stopped_by_sigterm(exc) else 130
        how = "terminated" if code == 143 else "interrupted"
        if isinstance(exc, Interrupted) and exc.path is not None:
            print(f"dreamstyle: {how} at step {exc.step} of {exc.total}; the best result so far is saved in "
                  f"{exc.path}", file=sys.stderr)
        else:
            print(f"dreamstyle: {how}", file=sys.stderr)
        return code
    except BrokenPipeError:  # `dreamstyle layers | head`
        sys.stderr.close()
        return 0
    except ImportError as exc:  # a library that does not load: torch under a low memory limit, a broken install
        print(f"dreamstyle: error: cannot load {exc.name or 'a library'} ({_first_line(exc)}){_limit_hint()}",
              file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            name = f" '{_cut(exc.filename)}'" if exc.filename else ""
            print(f"dreamstyle: error: the file name{name} is too long for the file system; use a shorter one",
                  file=sys.stderr)
            return 2
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print("dreamstyle: error: the disk is full; free some space and run again", file=sys.stderr)
            return 1
        raise
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, MemoryError) or _is_out_of_memory(exc):
            print("dreamstyle: error: out of memory; use a smaller --size or a lighter --model", file=sys.stderr)
            return 1
        if type(exc).__name__ == "_LinAlgError":  # torch.linalg on NaN or infinite values
            print(f"dreamstyle: error: the run failed ({_first_line(exc)[:120]}); the images or the network's "
                  "weights hold values that are not finite", file=sys.stderr)
            return 1
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cut(name: object, keep: int = 80) -> str:
    text = str(name)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"


def _limit_hint() -> str:
    """What to say about the address-space limit (``ulimit -v``), if one is set."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return ""
    if limit == resource.RLIM_INFINITY:
        return "; check the installation"
    return f"; the address-space limit (ulimit -v) of {limit / 2**30:.1f} GiB may be too low: raise it"


def run() -> None:
    """The ``dreamstyle`` command's entry point: main(), then a quick exit. After a run, an orderly
    interpreter shutdown spends about 0.9 s tearing torch down (BENCHMARKS.md); every output is already
    written and synced, so the process flushes its streams and leaves at once.

    The signal handlers come first of all, so a Ctrl-C or SIGTERM however early gives exit 130 or 143."""
    install_signal_handlers()
    try:
        code = _main()
    except KeyboardInterrupt as exc:  # in the instant after main's own handling
        code = 143 if stopped_by_sigterm(exc) else 130
    for sig in (signal.SIGINT, signal.SIGTERM):  # leaving now: a late signal changes nothing
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)
    if "torch" in sys.modules:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
