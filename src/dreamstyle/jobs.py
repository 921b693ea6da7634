"""Jobs for the web studio (torch-free to import): a queue that runs one optimization at a time, and
a fast lane for trained-network work, so a quick apply is never stuck behind a long stylize.

A :class:`Job` is one call of the public API (``stylize``, ``dream``, ``explore`` or ``apply``) in
its own folder. Its run events update its state (progress, loss terms, ETA, the latest preview);
anyone may wait for the next change, from a thread (:meth:`JobQueue.wait`) or from the server's event
loop (:meth:`JobQueue.wait_async`, which holds no thread). Cancelling uses the API's cancel token, so a
cancelled job keeps its best image so far, as Ctrl-C does.

Bounds: at most ``max_waiting`` jobs wait in line (:class:`QueueFull` beyond); the same job sent twice
within ``same_seconds`` (a double click) is the one job; finished jobs are forgotten, and their files
deleted, ``keep_seconds`` after they end, by a sweep every ``sweep_seconds``. :meth:`JobQueue.close`
cancels everything and waits for the running jobs to stop before it deletes their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError, message_for
from .events import CancelToken, Done, Event, Interrupted, Preview, Step

FAST_MODES = ("apply",)  # a trained network: the fast lane
FINISHED = ("done", "failed", "cancelled")
UNEXPECTED = "the job stopped on an unexpected error in dreamstyle; the server's log has the details"


class QueueFull(UserError):
    """Too many jobs are waiting already."""


@dataclass(eq=False)  # a job is itself: compared and hashed by identity, never field by field
class Job:
    id: str
    mode: str
    folder: Path
    call: Callable[[Job], Any]  # runs the job (given the job, for its folder, events and cancel token)
    params: dict[str, Any] = field(default_factory=dict)  # what the page sent, to restore the form
    state: str = "queued"  # queued, running, done, cancelled, failed
    step: int = 0
    total: int = 0
    label: str = ""
    loss: float | None = None
    parts: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    result: Path | None = None
    result_params: dict[str, Any] | None = None
    preview: bytes | None = None  # PNG
    preview_step: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    first_step: tuple[float, int] | None = None  # (when, step) of the first step event: the rate is timed from it
    finished: float | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    version: int = 0  # bumped on every change; waiters compare
    slow: bool = False  # in the slow lane whatever its mode (see JobQueue.submit)
    key: str | None = None  # what identifies the same job sent twice

    @property
    def eta(self) -> float | None:
        """Seconds left, from the rate of the steps since the first one: the set-up before it (loading the
        network, a cold start's imports) is not a step's cost."""
        if self.state != "running" or not self.first_step or not self.total:
            return None
        since, first = self.first_step
        if self.step <= first:
            return None
        return (time.time() - since) / (self.step - first) * max(0, self.total - self.step)

    def view(self, position: int | None = None) -> dict[str, Any]:
        """What the page sees of the job."""
        return {"id": self.id, "mode": self.mode, "state": self.state, "step": self.step, "total": self.total,
                "label": self.label, "loss": self.loss, "parts": self.parts, "error": self.error,
                "eta": None if self.eta is None else round(self.eta, 1), "position": position,
                "preview_step": self.preview_step, "has_result": self.result is not None,
                "params": self.params, "result_params": self.result_params,
                "seconds": round((self.finished or time.time()) - self.started, 1) if self.started else None,
                "version": self.version}


class JobQueue:
    """Runs jobs in two lanes (threads): optimization jobs one at a time in order, fast jobs beside them."""

    def __init__(self, root: Path, keep_seconds: float = 6 * 3600, preview_every: int = 5, max_waiting: int = 20,
                 same_seconds: float = 2.0, sweep_seconds: float = 60.0) -> None:
        self.root = root
        self.keep_seconds = keep_seconds
        self.preview_every = preview_every
        self.max_waiting = max_waiting
        self.same_seconds = same_seconds
        self.sweep_seconds = sweep_seconds
        self.on_sweep: list[Callable[[], None]] = []  # also run by the timed sweep (the studio's old uploads)
        self.jobs: dict[str, Job] = {}
        self.lanes: dict[str, deque[Job]] = {"slow": deque(), "fast": deque()}
        self.running: dict[str, Job | None] = {lane: None for lane in self.lanes}
        self.changed = threading.Condition()
        self.stopping = False
        self.streams_closed = False  # the server is stopping: event streams end
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._stop_sweeping = threading.Event()
        self.threads = [threading.Thread(target=self._worker, args=(lane,), name=f"dreamstyle-{lane}", daemon=True)
                        for lane in self.lanes]
        self.sweeper = threading.Thread(target=self._sweep, name="dreamstyle-sweep", daemon=True)
        for t in [*self.threads, self.sweeper]:
            t.start()

    # --- submitting and watching ---------------------------------------------------------------

    def submit(self, mode: str, call: Callable[[Job], Any], params: dict[str, Any], key: str | None = None,
               slow: bool = False) -> Job:
        """Queue a job in its own new folder. The same ``key`` sent again within ``same_seconds`` while the
        first is unfinished gives that job back (a double click starts one job). :class:`QueueFull` when
        ``max_waiting`` jobs wait already. ``slow``: a job of a fast mode that will take minutes (an apply
        that fine-tunes a new painting's style first) waits in the slow lane."""
        with self.changed:
            if self.stopping:
                raise QueueFull("the studio is stopping")
            now = time.time()
            if key is not None:
                for job in self.jobs.values():
                    if job.key == key and job.state not in FINISHED and now - job.created <= self.same_seconds:
                        return job
            waiting = sum(len(lane) for lane in self.lanes.values())
            if waiting >= self.max_waiting:
                raise QueueFull(f"{waiting} jobs are waiting already; wait for some to finish, or cancel some")
            job_id = uuid.uuid4().hex[:12]
            folder = self.root / job_id
            folder.mkdir(parents=True)
            job = Job(job_id, mode, folder, call, params, key=key, slow=slow)
            self.jobs[job.id] = job
            self._lane_of(job).append(job)
            self._touch(job)
        return job

    def position(self, job: Job) -> int | None:
        """0 while running; 1, 2, ... in line; None when finished."""
        with self.changed:
            if job.state == "running":
                return 0
            name = self._lane_name(job)
            for i, waiting in enumerate(self.lanes[name]):
                if waiting is job:
                    return i + (1 if self.running[name] is not None else 0)
            return None

    def view(self, job: Job) -> dict[str, Any]:
        """What the page sees of ``job``, read in one piece (its version matches its state)."""
        with self.changed:
            return job.view(self.position(job))

    def views(self) -> list[dict[str, Any]]:
        """Every job's view, oldest first."""
        with self.changed:
            return [self.view(j) for j in sorted(self.jobs.values(), key=lambda j: j.created)]

    @staticmethod
    def _lane_name(job: Job) -> str:
        return "fast" if job.mode in FAST_MODES and not job.slow else "slow"

    def _lane_of(self, job: Job) -> deque[Job]:
        return self.lanes[self._lane_name(job)]

    def wait(self, job: Job, seen: int, timeout: float = 15.0) -> int:
        """Block until ``job`` changes past version ``seen`` (or timeout); return its version."""
        with self.changed:
            self.changed.wait_for(lambda: job.version != seen or self.stopping or self.streams_closed,
                                  timeout=timeout)
            return job.version

    async def wait_async(self, job: Job, seen: int, timeout: float = 15.0) -> int:
        """:meth:`wait` for an event loop: the loop is woken by the job's next change, no thread waits."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self.changed:
            if job.version != seen or self.stopping or self.streams_closed:
                return job.version
            self._async_waiters.add(entry)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self.changed:
                self._async_waiters.discard(entry)
        return job.version

    def close_streams(self) -> None:
        """The server is stopping: every waiter returns now, and event streams end."""
        with self.changed:
            self.streams_closed = True
            self._notify()

    def cancel(self, job: Job) -> None:
        with self.changed:
            if job.state == "queued":
                with contextlib.suppress(ValueError):
                    self._lane_of(job).remove(job)
                job.state, job.finished = "cancelled", time.time()
            job.cancel.cancel()
            self._touch(job)

    def remove(self, job: Job) -> bool:
        """Forget a finished job and delete its files; False (and nothing done) while it is queued or running."""
        with self.changed:
            if job.state not in FINISHED or self.running["slow"] is job or self.running["fast"] is job:
                return False
            self.jobs.pop(job.id, None)
            self._touch(job)
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def _touch(self, job: Job) -> None:
        """Call with the lock held."""
        job.version += 1
        self._notify()

    def _notify(self) -> None:
        self.changed.notify_all()
        for loop, event in list(self._async_waiters):
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(event.set)

    # --- running ----------------------------------------------------------------------------------

    def _worker(self, lane: str) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.lanes[lane] or self.stopping)
                if self.stopping:
                    return
                job = self.lanes[lane].popleft()
                job.state, job.started = "running", time.time()
                self.running[lane] = job
                self._touch(job)
            try:
                self._run(job)
            except BaseException:  # noqa: BLE001 - the lane must outlive anything a job raises
                traceback.print_exc()
                self._finish(job, "failed", UNEXPECTED)
            finally:
                with self.changed:
                    self.running[lane] = None
                    self.changed.notify_all()
                if self.stopping:  # close() may have given up waiting: the last one out deletes its files
                    shutil.rmtree(job.folder, ignore_errors=True)

    def _run(self, job: Job) -> None:
        error = None
        try:
            job.call(job)
            state = "cancelled" if job.cancel.cancelled else "done"
        except Interrupted:
            state = "cancelled"
        except Exception as exc:  # noqa: BLE001 - a failed job must not take the server down
            state, error = "failed", message_for(exc)
            if error is None:  # a bug: its traceback goes to the server's log, plain words to the page
                traceback.print_exc()
                error = UNEXPECTED
        self._finish(job, state, error)

    def _finish(self, job: Job, state: str, error: str | None) -> None:
        with self.changed:
            if job.state == "running":
                job.state, job.finished = state, time.time()
                job.error = error if state == "failed" else job.error
                self._touch(job)

    def on_event(self, job: Job) -> Callable[[Event], None]:
        """The run-event subscriber that mirrors a run into its job (images are encoded outside the lock)."""
        def handle(event: Event) -> None:
            image = event.image if isinstance(event, (Preview, Done)) else None
            preview = png_bytes(image) if image is not None else None
            with self.changed:
                if isinstance(event, Step):
                    if job.first_step is None:
                        job.first_step = (time.time(), event.step)
                    job.step, job.total, job.label = event.step, event.total, event.label
                    job.loss, job.parts = event.loss, dict(event.parts)
                elif isinstance(event, Preview):
                    job.preview, job.preview_step = preview, event.step
                elif isinstance(event, Done):
                    job.step = event.step
                    if event.path is not None:
                        job.result, job.result_params = Path(event.path), dict(event.params)
                    if preview is not None:
                        job.preview, job.preview_step = preview, event.step
                self._touch(job)
        return handle

    # --- clean-up ---------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Every ``sweep_seconds``: forget old jobs (and whatever else asked to be swept), new jobs or not."""
        while not self._stop_sweeping.wait(self.sweep_seconds):
            for task in [self.cleanup, *self.on_sweep]:
                try:
                    task()
                except Exception as exc:  # noqa: BLE001 - a failed sweep is tried again next time
                    print(f"dreamstyle: warning: clean-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    def cleanup(self, now: float | None = None) -> None:
        """Forget finished jobs older than ``keep_seconds`` and delete their folders."""
        now = time.time() if now is None else now
        with self.changed:
            old = [j for j in self.jobs.values() if j.finished and now - j.finished > self.keep_seconds]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self, timeout: float = 60.0) -> bool:
        """Cancel every job, wait up to ``timeout`` seconds for the running ones to stop, then delete the job
        files. True when everything stopped; otherwise a running job's files are left to it (its lane deletes
        them when it stops) and only the rest are deleted."""
        with self.changed:
            self.stopping = self.streams_closed = True
            now = time.time()
            for job in self.jobs.values():
                job.cancel.cancel()
                if job.state == "queued":
                    job.state, job.finished = "cancelled", now
                    self._touch(job)
            for lane in self.lanes.values():
                lane.clear()
            self._notify()
        self._stop_sweeping.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        with self.changed:
            busy = {j.folder for j in self.running.values() if j is not None}
        if not busy:
            shutil.rmtree(self.root, ignore_errors=True)
            return True
        for job in list(self.jobs.values()):
            if job.folder not in busy:
                shutil.rmtree(job.folder, ignore_errors=True)
        return False


def png_bytes(image: Any) -> bytes:
    """A preview as PNG, compressed lightly: it is sent once and replaced a few steps later."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
