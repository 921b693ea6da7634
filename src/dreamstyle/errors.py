"""Errors that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

from typing import Sequence


class DreamstyleError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback."""

    exit_code = 1


class UserError(DreamstyleError):
    """Bad input: a missing or unreadable file, an unknown name, an out-of-range value."""

    exit_code = 2


class RunError(DreamstyleError):
    """The run itself failed (for example the loss became NaN)."""

    exit_code = 1


def check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    """A named setting must be one of ``choices``; otherwise a one-line UserError listing them."""
    if value not in choices:
        raise UserError(f"unknown {option} '{value}'; choose one of: {', '.join(choices)}")
