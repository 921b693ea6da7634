"""The ``dreamstyle`` command: options generated from :mod:`dreamstyle.settings`, runs through :mod:`dreamstyle.api`.

Starts without importing torch (``--help``, ``--version``, ``--show-params``, ``models``, ``layers``);
a run imports it when it starts. Errors become one line on stderr and an exit code: 2 for bad input,
1 for a failed run, 130 for Ctrl-C and 143 for SIGTERM (both keep the best result so far).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..events import install_signal_handlers, raise_if_signalled, restore_signal_handlers, stopped_by_sigterm
from ..settings import COMMANDS as SETTINGS_OF
from ..settings import (
    VIDEO_MODES,
    flag_of,
    options,
)
from .commands import COMMANDS, show_params
from .parser import build_parser


def _show_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None,
                  line: Any = None) -> None:
    print(f"dreamstyle: warning: {message}", file=sys.stderr)


def _flag_namer(command: str | None) -> Callable[[str], str]:
    """Setting name -> this command's flag, for re-wording the API's messages."""
    def name(setting: str) -> str:
        for cls in SETTINGS_OF.get(command or "", ()):
            if any(f.name == setting for f, _ in options(cls)):
                return "MODEL" if command == "explore" and setting == "model" else flag_of(cls, setting)
        return "--" + setting.replace("_", "-")
    return name


def _video_mode(argv: Sequence[str]) -> str:
    """The --mode of a ``video`` or ``batch`` command line (its options depend on it); apply if none or not
    valid."""
    if "video" not in argv and "batch" not in argv:
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
    from ..errors import exit_code, message_for
    from ..events import Interrupted

    warnings.showwarning = _show_warning
    command = None
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(_video_mode(argv))
        args = parser.parse_args(argv)
        command = args.command
        if args.show_params:
            code = show_params(args.show_params)
        elif args.command is None:
            parser.print_help()
            return 2
        else:
            code = COMMANDS[args.command](args)
        raise_if_signalled()  # one held during an import, or swallowed by a library: the run did not finish
        return code
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
    except Exception as exc:
        text = message_for(exc, _flag_namer(command))
        if text is None and isinstance(exc, ImportError):  # a library that does not load: torch under a low
            text = f"cannot load {exc.name or 'a library'} ({_first_line(exc)}){_limit_hint()}"  # memory limit
        if text is None:
            raise
        print(f"dreamstyle: error: {text}", file=sys.stderr)
        return exit_code(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
