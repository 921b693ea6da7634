"""Where many jobs run: a local process pool on the free cores, or Ray tasks on a cluster.

Both run the same job function and hand back :class:`concurrent.futures.Future` objects, so the driver
(:mod:`.batch`) waits on either the same way. A job's input files go with it: paths for the local pool
(one disk), bytes through Ray's object store for Ray (workers need no shared disk; a painting that many
jobs use is put once). The result (pixels and parameters) comes back to the driver, which writes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..errors import DreamstyleError, UserError, message_for

JobFunction = Callable[..., dict]
CONNECT_SECONDS = 3.0  # how long an address may take to answer before it counts as unreachable


# --- the job, in a worker ---------------------------------------------------------------------------------

def run_job(spec: dict[str, Any], *files: bytes | str) -> dict[str, Any]:
    """One job in a worker: ``spec`` says the mode, photo, paintings and settings; ``files`` are the contents
    (bytes) or local paths of ``spec['files']``, in order. Returns the image's pixels and parameters, or the
    error's one line and whether trying again could help (never raises, so no exception crosses processes)."""
    if spec.get("threads") and (spec["mode"] != "apply" or "torch" in sys.modules):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    with tempfile.TemporaryDirectory(prefix="dreamstyle-job-") as tmp:
        local = materialize(spec["files"], files, Path(tmp))
        try:
            image = _call(swap(spec, local))
        except Exception as exc:  # noqa: BLE001 - reported to the driver in one line
            return failure(exc)
    back = {v: k for k, v in local.items()}
    params = swap(image.info.get("dreamstyle", {}), back)
    return {"mode": image.mode, "size": image.size, "pixels": image.tobytes(), "params": params}


def failure(exc: Exception) -> dict[str, Any]:
    """What a worker sends back for a job that raised: the error's one line, and whether trying again could help
    (not for bad input)."""
    text = message_for(exc) or f"{type(exc).__name__}: {_first_line(exc)}"
    return {"error": text, "retry": not (isinstance(exc, DreamstyleError) and exc.exit_code == 2)}


def files_in(values: Mapping[str, Any]) -> list[str]:
    """The settings' values that name files (masks, a start image, a model, weights): they go with the job."""
    found = []
    for value in values.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and os.path.isfile(item):
                found.append(item)
    return found


def materialize(names: Sequence[str], files: Sequence[bytes | str], tmp: Path) -> dict[str, str]:
    """Each job file as a local path: a path as it is, bytes written into ``tmp`` under the file's own name."""
    local: dict[str, str] = {}
    for i, (name, data) in enumerate(zip(names, files)):
        if isinstance(data, str):
            local[name] = data
            continue
        folder = tmp / str(i)
        folder.mkdir()
        path = folder / Path(name).name
        path.write_bytes(data)
        local[name] = str(path)
    return local


def swap(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every string that is a key of ``names`` replaced by its value (through lists and dicts)."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {k: swap(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [swap(v, names) for v in value]
    return value


def _call(spec: dict[str, Any]) -> Any:
    """The job's workflow, as the API would call it (without a progress bar or an output file)."""
    from ..events import Run, Step
    from ..settings import BATCH_MODES, make

    mode = spec["mode"]
    s = make(BATCH_MODES[mode], spec["settings"])
    run = Run(mode, 0)
    channel = spec.get("channel")
    if channel is not None:  # the driver's on_job_event wants this job's steps, as they happen
        run.subscribe(lambda event: channel.put((spec["name"], event)) if isinstance(event, Step) else None)
    if mode == "stylize":
        from . import stylize

        return stylize.run(stylize.prepare(spec["photo"], spec["styles"], s, None), run)
    if mode == "dream":
        from . import dream

        return dream.dream(spec["photo"], s, None, run)
    from . import apply

    return apply.apply([spec["photo"]], s, None, run)[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --- the driver ------------------------------------------------------------------------------------------------

Outcome = tuple[Any, Any, bool]  # (result, None, _) for a job done; (None, its error, whether to try again)


def drive(pool: LocalPool | RayPool, items: Sequence[Any], submit: Callable[[Any], Future],
          outcome: Callable[[Future], Outcome], land: Callable[[Any, Any], None], fail: Callable[[Any, Any], None],
          retries: int, tick: Callable[[], None] | None = None) -> None:
    """Keep ``pool``'s slots busy with ``items`` (``submit(item)`` starts one); ``land(item, result)`` takes each
    finished one; a failed one is tried again (``retries`` times, when its outcome says that could help), then
    goes to ``fail(item, error)``.
    A dead local worker breaks the pool: every item in flight is charged a try and the pool restarted.
    ``tick()`` runs after every wait (at least twice a second)."""
    waiting, running, tries = deque(enumerate(items)), {}, Counter()  # type: ignore[var-annotated]
    while waiting or running:
        broken = False
        while waiting and len(running) < pool.slots:
            index, item = waiting.popleft()
            try:
                future = submit(item)
            except BrokenProcessPool:  # a worker died since the last look: this one waits for the new pool
                waiting.appendleft((index, item))
                broken = True
                break
            tries[index] += 1
            running[future] = (index, item)
        done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
        if tick is not None:
            tick()
        if broken or any(isinstance(f.exception(), BrokenProcessPool) for f in done):
            done = set(running)  # a worker died: every job in flight is lost with the pool
            wait(done)
            pool.restart()
        for future in done:
            index, item = running.pop(future)
            result, error, retry = outcome(future)
            if result is not None:
                land(item, result)
            elif retry and tries[index] <= retries:
                waiting.appendleft((index, item))
            else:
                fail(item, error)


# --- the local pool ------------------------------------------------------------------------------------------

def _init_worker(threads: int) -> None:
    """A pool worker: Ctrl-C is the driver's to handle (it stops the workers); torch gets its share of cores;
    and, as in the ``dreamstyle`` command, its optimizers do not import torch._dynamo (1.1-1.4 s a worker
    on a Zen 5 EPYC): the worker is dreamstyle's own process, running only its jobs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    from ..runtime import defer_dynamo

    defer_dynamo()


class LocalPool:
    """``workers`` processes (started fresh, not forked from a process that may hold torch's threads), each
    running one job at a time on ``threads`` torch threads."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers, self.threads = workers, threads
        self.slots = workers  # no more jobs in flight than workers: a dead worker's jobs are known
        self.executor = self._start()
        self.manager: Any = None

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads,))

    def submit(self, function: JobFunction, spec: dict[str, Any], files: Sequence[str]) -> Future:
        return self.executor.submit(function, {**spec, "threads": self.threads}, *files)

    def channel(self) -> Any:
        """A queue the workers can put events on (a manager's, made on first use)."""
        if self.manager is None:
            import multiprocessing

            self.manager = multiprocessing.get_context("spawn").Manager()
        return self.manager.Queue()

    def restart(self) -> None:
        """A worker died (the pool is broken): a fresh pool for the jobs still to do."""
        self.close(wait=False)
        self.executor = self._start()

    def close(self, wait: bool = True) -> None:
        """Shut the pool down; without ``wait``, stop the workers first (their jobs are lost, nothing is written),
        so that the shutdown, which then releases the pool's queues and locks, returns at once."""
        if not wait:
            for proc in list((getattr(self.executor, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
                    proc.join(5)
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.manager is not None:
            self.manager.shutdown()
            self.manager = None


# --- Ray ---------------------------------------------------------------------------------------------------

class RayPool:
    """Ray tasks, each asking for ``cpus`` CPUs and ``gpus`` GPUs; Ray itself retries a task whose worker
    died (``retries`` times). Connects to ``address`` unless this process is connected already."""

    def __init__(self, address: str, cpus: float, gpus: float, retries: int) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise UserError("--ray needs Ray, which is not installed: pip install \"dreamstyle[scale]\"") from None
        self.ray = ray
        self.owned = connect(ray, address)
        self.options = dict(num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=False)
        self.threads = max(1, int(cpus))
        self.remote = ray.remote(_apply).options(**self.options)
        self.puts: dict[str, Any] = {}  # path -> its object, put once
        self.queues: list[Any] = []
        capacity = float(ray.cluster_resources().get("CPU", 1)) / cpus
        self.workers = max(1, int(capacity))  # tasks that run at once (by CPUs)
        self.slots = max(2, int(2 * capacity))  # enough queued that no worker waits on the driver

    def submit(self, function: JobFunction, spec: dict[str, Any], files: Sequence[str]) -> Future:
        refs = [self._put(path) for path in files]
        return self.remote.remote(function, {**spec, "threads": self.threads}, *refs).future()

    def _put(self, path: str) -> Any:
        if path not in self.puts:
            self.puts[path] = self.ray.put(Path(path).read_bytes())
        return self.puts[path]

    def channel(self) -> Any:
        """A queue the tasks can put events on (a Ray actor that asks for no CPU)."""
        from ray.util.queue import Queue

        self.queues.append(Queue(actor_options={"num_cpus": 0}))
        return self.queues[-1]

    def restart(self) -> None:
        """Ray replaces dead workers itself."""

    def close(self, wait: bool = True) -> None:
        self.puts.clear()
        for queue in self.queues:
            with contextlib.suppress(Exception):
                queue.shutdown()
        self.queues.clear()
        if self.owned:
            self.ray.shutdown()


def _apply(function: JobFunction, spec: dict[str, Any], *files: bytes) -> dict[str, Any]:
    """A Ray task: ``function`` (run_job, or a test's wrapper of it) on the job; Ray resolves the files' objects."""
    return function(spec, *files)


def connect(ray: Any, address: str) -> bool:
    """Connect this process to Ray at ``address`` (``local``: start a private instance here); True if this call
    connected (and the caller shuts it down), False if it was connected already. An address nobody answers
    at is refused in one line within seconds."""
    import logging

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR)
    if address == "local":
        ray.init(address="local", include_dashboard=False, **quiet)  # a private instance, whatever runs here
        return True
    if address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        if _wants_token(exc):  # Ray 2.59+ clusters started with `ray start` use token authentication
            raise UserError(f"the Ray cluster at '{address}' asks for its token: set RAY_AUTH_MODE=token here, "
                            "with the token in RAY_AUTH_TOKEN or ~/.ray/auth_token (`ray get-auth-token` on the "
                            "head node prints it)") from None
        raise UserError(f"cannot connect to the Ray cluster at '{address}' ({_first_line(exc)}); start one with "
                        "`ray start --head`, or give its address") from None
    return True


def _wants_token(exc: BaseException | None) -> bool:
    """Whether Ray refused the connection for a missing or wrong token (anywhere in the exception's chain)."""
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def check_reachable(address: str) -> None:
    """Refuse, in one line, an address (host:port or ray://host:port) where nothing answers."""
    text = address.split("://", 1)[-1].rstrip("/")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        host, port = text, "10001" if address.startswith("ray://") else "6379"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS) as conn:
            speaks_grpc = _answers_http2(conn)
    except (OSError, ValueError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (getattr(exc, "strerror", None) or str(exc))
        raise UserError(f"cannot reach the Ray cluster at '{address}' ({reason}); start one with "
                        "`ray start --head`, or check the address") from None
    if not speaks_grpc:  # a web server or a database on that port: Ray would wait on it for minutes
        raise UserError(f"'{address}' answers, but not as a Ray cluster; give the address `ray start --head` "
                        "printed (its GCS port, 6379 by default)")


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _answers_http2(conn: socket.socket) -> bool:
    """Whether the server on ``conn`` speaks HTTP/2, as Ray's gRPC services do: sent the client's preface, an
    HTTP/2 server answers with a SETTINGS frame (frame type 4, the fourth byte of its 9-byte header)."""
    try:
        conn.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            more = conn.recv(9 - len(header))
            if not more:
                return False
            header += more
    except OSError:
        return False
    return header[3] == 4


def drain(channel: Any, deliver: Callable[[str, Any], None]) -> None:
    """Hand every event waiting on ``channel`` (a manager's or Ray's queue) to ``deliver(job name, event)``."""
    while True:
        try:
            name, event = channel.get_nowait()
        except Exception as exc:  # queue.Empty, or ray.util.queue.Empty
            if type(exc).__name__ == "Empty":
                return
            raise
        deliver(name, event)
