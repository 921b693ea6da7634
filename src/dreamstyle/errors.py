"""Errors that the front ends turn into one-line messages and exit codes (torch-free)."""

from __future__ import annotations

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
