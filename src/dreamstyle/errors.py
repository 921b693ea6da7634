"""Errors that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations


class DreamstyleError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback."""

    exit_code = 1


class UserError(DreamstyleError):
    """Bad input: a missing or unreadable file, an unknown name, an out-of-range value."""

    exit_code = 2


class RunError(DreamstyleError):
    """The run itself failed (for example the loss became NaN)."""

    exit_code = 1
