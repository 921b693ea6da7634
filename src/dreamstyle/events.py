"""Run events, cancellation and the guarded run (torch-free).

A task reports what happens through a :class:`Run`: a :class:`Step` after every optimizer step (with
the step number, the level, the loss and each term), a :class:`Preview` of the current image when a
subscriber asks for one, and :class:`Done` at the end. Anyone can subscribe: the terminal progress
bar, ``--save-every``, and the studio, all the same way.

A :class:`CancelToken` stops a run from another thread; the run then ends as Ctrl-C ends it: the
best image so far is kept and saved, and :class:`Interrupted` is raised. :func:`guarded` is the one
place that does "save what we have, then raise Interrupted". SIGTERM is treated like Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Step:
    task: str
    step: int  # steps done so far in the whole run, from 1
    total: int
    label: str  # the level / octave / frame, e.g. "512x384"
    loss: float
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    task: str
    step: int
    total: int
    image: Image.Image


@dataclass(frozen=True)
class Done:
    task: str
    step: int
    total: int
    image: Image.Image | None
    path: Path | None
    params: dict[str, Any]
    interrupted: bool = False


Event = Step | Preview | Done
Subscriber = Callable[[Event], None]


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C, SIGTERM or a cancel token. ``image`` is the best result so far and
    ``path`` where it was saved (if anywhere); ``step`` of ``total`` steps were done; ``terminated`` says
    SIGTERM stopped it (kept through nested runs, so the CLI exits 143 and not 130)."""

    def __init__(self, image: Any, path: Path | None, step: int, total: int, terminated: bool = False) -> None:
        super().__init__(f"interrupted at step {step} of {total}")
        self.image, self.path, self.step, self.total = image, path, step, total
        self.terminated = terminated


class Cancelled(KeyboardInterrupt):
    """Raised inside a run whose cancel token was set; handled like Ctrl-C."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread; handled like Ctrl-C."""


def stopped_by_sigterm(exc: BaseException) -> bool:
    """Whether SIGTERM stopped this run: ``exc`` is a :class:`Terminated`, an :class:`Interrupted` that says so,
    or was raised while handling one (a nested run re-raises what stopped it, however deep)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, Terminated) or (isinstance(e, Interrupted) and e.terminated):
            return True
        todo += [e.__context__, e.__cause__]
    return False


class CancelToken:
    """Set from any thread to stop a run at its next step, keeping the best image so far."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Run:
    """One task's reporting: subscribers (each with how often it wants a preview), the cancel token,
    and the step count."""

    def __init__(self, task: str, total: int, subscribers: list[tuple[Subscriber, int]] | None = None,
                 cancel: CancelToken | None = None) -> None:
        self.task, self.total, self.cancel = task, total, cancel
        self.subscribers: list[tuple[Subscriber, int]] = list(subscribers or [])
        self.done = 0

    def expect(self, total: int, done: int | None = None) -> None:
        """Set the number of steps this run will take (and those already done, for a resumed run)."""
        self.total = total
        if done is not None:
            self.done = done

    def subscribe(self, subscriber: Subscriber, preview_every: int = 0) -> None:
        """``subscriber(event)`` gets every event; a Preview every ``preview_every`` steps (0: none)."""
        self.subscribers.append((subscriber, preview_every))

    def emit(self, event: Event) -> None:
        for subscriber, _ in self.subscribers:
            subscriber(event)

    def check(self) -> None:
        """Raise :class:`Cancelled` if the token was set, or what a signal the CLI received asks for (call between
        units of work)."""
        raise_if_signalled()
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled("cancelled")

    def step(self, label: str, loss: float, parts: dict[str, float] | None = None,
             preview: Callable[[], Image.Image] | None = None) -> None:
        """Report one step; render the preview once if any subscriber wants one now; honour cancellation."""
        self.done += 1
        event = Step(self.task, self.done, self.total, label, loss, dict(parts or {}))
        wanting = []
        for subscriber, every in self.subscribers:
            subscriber(event)
            if preview is not None and every and self.done % every == 0:
                wanting.append(subscriber)
        if wanting:
            shown = Preview(self.task, self.done, self.total, preview())  # type: ignore[misc]
            for subscriber in wanting:
                subscriber(shown)
        self.check()

    def finish(self, image: Image.Image | None, path: Path | None, params: dict[str, Any],
               interrupted: bool = False) -> None:
        self.emit(Done(self.task, self.done, self.total, image, path, params, interrupted))


class Child(Run):
    """A part of a bigger run (a sheet's cell, a zoom's first frame): its steps count in the parent's run,
    the parent's cancel token stops it, and its Done is left to the parent."""

    def __init__(self, parent: Run, prefix: str = "") -> None:
        super().__init__(parent.task, parent.total, None, parent.cancel)
        self.parent, self.prefix = parent, prefix

    def step(self, label: str, loss: float, parts: dict[str, float] | None = None,
             preview: Callable[[], Image.Image] | None = None) -> None:
        try:
            self.parent.step(self.prefix + label, loss, parts, preview)
        finally:  # also when the parent's step raises (a cancel): what is kept counts this step
            self.done = self.parent.done

    def expect(self, total: int, done: int | None = None) -> None:
        pass  # the parent counted this part's steps in its own total

    def finish(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def guarded(run: Run, keep: Callable[[], tuple[Any, Path | None]]) -> Iterator[None]:
    """Ctrl-C, SIGTERM or cancellation inside the block: ``keep()`` saves the best result so far and
    returns (result, path); then :class:`Interrupted` is raised with them (and with what stopped the run).
    A signal the CLI received before the run started stops it here, before anything is kept."""
    raise_if_signalled()
    try:
        yield
    except KeyboardInterrupt as exc:  # Interrupted from a nested run too: this run keeps its own result
        terminated = stopped_by_sigterm(exc)
        with deferred_signals(swallow=True):  # a second Ctrl-C must not lose the save in progress
            result, path = keep()
        raise Interrupted(result, path, run.done, run.total, terminated) from None


_deferring: list[int] = []  # signals caught while deferring (main thread only); None when not deferring
_depth = 0


@contextlib.contextmanager
def deferred_signals(swallow: bool = False) -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done (in the main thread; elsewhere a no-op), then
    raise KeyboardInterrupt/Terminated if one came (or, with ``swallow``, drop it: the caller is already
    stopping). Used around file writes, so that a write is never cut half-way and no temp file is left
    behind. Nested blocks leave the signal to the outermost one."""
    global _depth
    if threading.current_thread() is not threading.main_thread() or _depth:
        yield
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda number, frame: _deferring.append(number))
        except (ValueError, OSError):  # pragma: no cover - not in the main interpreter
            pass
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        caught = list(_deferring)
        _deferring.clear()
    if caught and not swallow:
        raise Terminated("terminated") if signal.SIGTERM in caught else KeyboardInterrupt()


def raise_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C in this process."""
    def handler(number: int, frame: Any) -> None:
        raise Terminated("terminated")

    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGTERM, handler)


# --- the command line's signal handling -----------------------------------------------------------------

_signalled: list[int] = []  # SIGINT/SIGTERM received since install_signal_handlers() (main thread only)


def _stop_for(number: int) -> KeyboardInterrupt:
    return Terminated("terminated") if number == signal.SIGTERM else KeyboardInterrupt()


def _importing(frame: Any) -> bool:
    """Whether the interrupted code is running an import (a module's top level, torch's included)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def install_signal_handlers() -> dict[int, Any]:
    """SIGINT (Ctrl-C) and SIGTERM stop this process's run, as KeyboardInterrupt and :class:`Terminated`
    (the CLI calls this first thing); returns the handlers they replace, for :func:`restore_signal_handlers`.

    Each signal is also remembered, so that it stops the run even when it came before the run began: one
    that arrives during an import is held (an exception half-way through importing torch can abort the
    process), and one that a library swallowed (a bare ``except:``) is not lost; :func:`raise_if_signalled`,
    which every run calls at its start and at each step, raises it then."""
    _signalled.clear()

    def handler(number: int, frame: Any) -> None:
        _signalled.append(number)
        if not _importing(frame):
            raise _stop_for(number)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            previous[sig] = signal.signal(sig, handler)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced, and forget the signals it remembered."""
    for sig, handler in previous.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(sig, handler)
    _signalled.clear()


def raise_if_signalled() -> None:
    """Raise what a signal received since :func:`install_signal_handlers` asks for (Terminated wins)."""
    if _signalled:
        raise _stop_for(signal.SIGTERM if signal.SIGTERM in _signalled else signal.SIGINT)


__all__ = ["Step", "Preview", "Done", "Event", "Subscriber", "Interrupted", "Cancelled", "Terminated",
           "CancelToken", "Run", "Child", "guarded", "deferred_signals", "raise_on_sigterm", "stopped_by_sigterm",
           "install_signal_handlers", "restore_signal_handlers", "raise_if_signalled"]
