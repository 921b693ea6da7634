"""Jobs for the web studio (torch-free to import): a queue that runs one optimization at a time, and
a fast lane for trained-network work, so a quick apply is never stuck behind a long stylize.

A :class:`Job` is one call of the public API (``stylize``, ``dream``, ``explore`` or ``apply``) in
its own folder. Its run events update its state (progress, loss terms, ETA, the latest preview);
anyone may wait for the next change (the server streams them as server-sent events). Cancelling
uses the API's cancel token, so a cancelled job keeps its best image so far, as Ctrl-C does.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DreamstyleError, SettingError
from .events import CancelToken, Done, Event, Interrupted, Preview, Step

SLOW_MODES = ("stylize", "dream", "explore")  # optimization: one at a time
FAST_MODES = ("apply",)  # a trained network: the fast lane


@dataclass
class Job:
    id: str
    mode: str
    folder: Path
    call: Callable[[Job], Any]  # runs the job (given the job, for its events and cancel token)
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
    finished: float | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    version: int = 0  # bumped on every change; waiters compare

    @property
    def eta(self) -> float | None:
        if self.state != "running" or not self.started or not self.step or not self.total:
            return None
        return (time.time() - self.started) / self.step * max(0, self.total - self.step)

    def view(self, position: int | None = None) -> dict[str, Any]:
        """What the page sees of the job."""
        return {"id": self.id, "mode": self.mode, "state": self.state, "step": self.step, "total": self.total,
                "label": self.label, "loss": self.loss, "parts": self.parts, "error": self.error,
                "eta": None if self.eta is None else round(self.eta, 1), "position": position,
                "preview_step": self.preview_step, "has_result": self.result is not None,
                "params": self.params, "result_params": self.result_params,
                "seconds": round((self.finished or time.time()) - self.started, 1) if self.started else None}


class JobQueue:
    """Runs jobs in two lanes (threads): optimization jobs one at a time in order, fast jobs beside them."""

    def __init__(self, root: Path, keep_seconds: float = 6 * 3600, preview_every: int = 5) -> None:
        self.root = root
        self.keep_seconds = keep_seconds
        self.preview_every = preview_every
        self.jobs: dict[str, Job] = {}
        self.lanes: dict[str, deque[Job]] = {"slow": deque(), "fast": deque()}
        self.changed = threading.Condition()
        self.stopping = False
        self.threads = [threading.Thread(target=self._worker, args=(lane,), name=f"dreamstyle-{lane}", daemon=True)
                        for lane in self.lanes]
        for t in self.threads:
            t.start()

    # --- submitting and watching ---------------------------------------------------------------

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:12]
        folder = self.root / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def submit(self, mode: str, call: Callable[[Job], Any], params: dict[str, Any],
               job_id: str | None = None, folder: Path | None = None) -> Job:
        if job_id is None or folder is None:
            job_id, folder = self.new_folder()
        job = Job(job_id, mode, folder, call, params)
        with self.changed:
            self.jobs[job.id] = job
            self.lanes["fast" if mode in FAST_MODES else "slow"].append(job)
            self._touch(job)
        self.cleanup()
        return job

    def position(self, job: Job) -> int | None:
        """0 while running; 1, 2, ... in line; None when finished."""
        if job.state == "running":
            return 0
        for lane in self.lanes.values():
            if job in lane:
                running = any(j.state == "running" and j is not job and self._lane_of(j) is lane
                              for j in self.jobs.values())
                return list(lane).index(job) + (1 if running else 0)
        return None

    def _lane_of(self, job: Job) -> deque[Job]:
        return self.lanes["fast" if job.mode in FAST_MODES else "slow"]

    def wait(self, job: Job, seen: int, timeout: float = 15.0) -> int:
        """Block until ``job`` changes past version ``seen`` (or timeout); return its version."""
        with self.changed:
            self.changed.wait_for(lambda: job.version != seen or self.stopping, timeout=timeout)
            return job.version

    def cancel(self, job: Job) -> None:
        with self.changed:
            if job.state == "queued":
                self._lane_of(job).remove(job)
                job.state, job.finished = "cancelled", time.time()
            job.cancel.cancel()
            self._touch(job)

    def _touch(self, job: Job) -> None:
        job.version += 1
        self.changed.notify_all()

    # --- running ----------------------------------------------------------------------------------

    def _worker(self, lane: str) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.lanes[lane] or self.stopping)
                if self.stopping:
                    return
                job = self.lanes[lane].popleft()
                job.state, job.started = "running", time.time()
                self._touch(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            job.call(job)
            state = "cancelled" if job.cancel.cancelled else "done"
        except Interrupted:
            state = "cancelled"
        except SettingError as exc:
            state, job.error = "failed", exc.render(lambda name: name)
        except DreamstyleError as exc:
            state, job.error = "failed", str(exc)
        except MemoryError:
            state, job.error = "failed", "out of memory; use a smaller size or a lighter network"
        except Exception as exc:  # noqa: BLE001 - a failed job must not take the server down
            traceback.print_exc()
            state, job.error = "failed", f"the job failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        with self.changed:
            job.state, job.finished = state, time.time()
            self._touch(job)

    def on_event(self, job: Job) -> Callable[[Event], None]:
        """The run-event subscriber that mirrors a run into its job."""
        def handle(event: Event) -> None:
            with self.changed:
                if isinstance(event, Step):
                    job.step, job.total, job.label = event.step, event.total, event.label
                    job.loss, job.parts = event.loss, dict(event.parts)
                elif isinstance(event, Preview):
                    job.preview, job.preview_step = png_bytes(event.image), event.step
                elif isinstance(event, Done):
                    job.step = event.step
                    if event.path is not None:
                        job.result, job.result_params = Path(event.path), dict(event.params)
                    if event.image is not None:
                        job.preview, job.preview_step = png_bytes(event.image), event.step
                self._touch(job)
        return handle

    # --- clean-up ---------------------------------------------------------------------------------

    def cleanup(self, now: float | None = None) -> None:
        """Forget finished jobs older than ``keep_seconds`` and delete their folders."""
        now = time.time() if now is None else now
        with self.changed:
            old = [j for j in self.jobs.values() if j.finished and now - j.finished > self.keep_seconds]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop the lanes (cancelling what runs) and delete every job's files."""
        with self.changed:
            self.stopping = True
            for job in self.jobs.values():
                job.cancel.cancel()
            self.changed.notify_all()
        for t in self.threads:
            t.join(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def png_bytes(image: Any) -> bytes:
    """A preview as PNG, compressed lightly: it is sent once and replaced a few steps later."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
