"""Many photos through one workflow: ``dreamstyle batch``.

The jobs come from a folder of photos (every photo with the same settings) or from a CSV or JSON list (a
photo, its painting(s) and any settings per row). Each job is an ordinary stylize, apply or dream call,
checked as one: every row is checked before any work starts, and bad rows are refused together, each
named with its line. The jobs then run on a local process pool sized to the free cores, or as Ray tasks
(:mod:`.scale`); each result comes back here and is written atomically with its parameters.

A manifest in the output folder records each finished job with a hash of what it depends on (the mode,
its settings, the contents of its files), so a rerun skips what is done and redoes a job whose settings
or inputs changed. A failed job is tried again (``retries``), then reported in one line, and the others
finish. Ctrl-C stops the workers; every output already written stays, and none is half-written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SettingError, UserError, message_for
from ..events import Interrupted, Run, stopped_by_sigterm
from ..fastnet.styles import bundled_styles, find_bundled
from ..images import IMAGE_SUFFIXES, atomic_path, check_input_file, check_output_path, image_files, save_image
from ..settings import BATCH_MODES, BatchSettings, flag_of, make, options, parse_kind
from .scale import JobFunction, LocalPool, RayPool, drain, drive, files_in, run_job, swap

MANIFEST = "dreamstyle-batch.json"
JobEvents = Callable[[str, Any], None]  # (a job's output name, one of its run events)
_PHOTO, _STYLE, _OUTPUT = ("photo", "content", "image"), ("style", "styles", "painting", "paintings"), ("output",)
_SHOWN_ERRORS = 5  # bad rows named in the one-line refusal


@dataclass
class Job:
    """One call: ``where`` names it in messages (the list's line, or the photo), ``output`` is its file name in the
    output folder, ``files`` every input file it reads and ``key`` the hash the manifest keeps."""

    where: str
    photo: str
    styles: list[str]
    settings: dict[str, Any]
    output: str = ""
    files: list[str] = field(default_factory=list)
    key: str = ""

    def spec(self, mode: str) -> dict[str, Any]:
        return {"mode": mode, "photo": self.photo, "styles": self.styles, "settings": self.settings,
                "files": self.files}


@dataclass
class BatchReport:
    """What a batch did: outputs written, jobs skipped as already done, and failures (where, one-line error)."""

    folder: Path
    total: int
    skipped: int = 0
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    workers: int = 0  # how many jobs ran at once: the local processes, or the Ray tasks the cluster holds


# --- reading and checking the jobs ------------------------------------------------------------------------

def read_jobs(inputs: str | os.PathLike, bs: BatchSettings, common: Mapping[str, Any]) -> list[Job]:
    """Every job of ``inputs`` (a folder of photos, a .csv or a .json list), each checked as its call would be,
    with ``common`` (the mode's settings for all jobs) under each row's own; all bad rows in one UserError."""
    jobs, problems = [], []
    for where, row, base in _rows(Path(inputs)):
        try:
            jobs.append(_job(where, row, base, bs, common))
        except (UserError, TypeError) as exc:
            problems.append(f"{where}: {message_for(exc) or exc}")
    if problems:
        more = f"; and {len(problems) - _SHOWN_ERRORS} more" if len(problems) > _SHOWN_ERRORS else ""
        raise UserError("; ".join(problems[:_SHOWN_ERRORS]) + more + "; no job was started, fix these rows first")
    if not jobs:
        raise UserError(f"'{inputs}' holds no jobs; give a folder of photos or a list with at least one row")
    _precheck(bs.mode, jobs)
    return jobs


def _rows(inputs: Path) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """(where, row, the folder relative paths start from) for each job of ``inputs``."""
    if inputs.is_dir():
        photos = image_files(inputs)
        if not photos:
            raise UserError(f"folder '{inputs}' has no photos; give a folder of images, or a .csv or .json list")
        for photo in photos:
            yield f"'{photo.name}'", {"photo": str(photo.relative_to(inputs))}, inputs  # relative to the base
        return
    suffix = inputs.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"cannot read jobs from '{inputs}': give a folder of photos, or a list of jobs in a .csv or "
                        ".json file")
    text = check_input_file(inputs, "a list of jobs").read_text(encoding="utf-8-sig", errors="replace")
    rows = _csv_rows(text) if suffix == ".csv" else _json_rows(text, inputs.name)
    for line, row in rows:
        yield f"{inputs.name}, line {line}", row, inputs.parent


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    for row in reader:
        extra = row.pop(None, None)
        if extra:
            row["(a cell with no column)"] = ",".join(extra)
        yield reader.line_num, {k: v for k, v in row.items() if v is not None and str(v).strip()}


def _json_rows(text: str, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects of a JSON list, each with the line it starts on."""
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if not text[start:start + 1] == "[":
        raise UserError(f"{name} must hold a JSON list of jobs, such as [{{\"photo\": \"a.jpg\"}}]")
    i = start + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if text[i:i + 1] in ("]", ""):
            return
        line = text.count("\n", 0, i) + 1
        try:
            row, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise UserError(f"{name}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{name}, line {line}: each job must be an object, such as {{\"photo\": \"a.jpg\"}}")
        yield line, {k: v for k, v in row.items() if v is not None and v != ""}


def _job(where: str, row: dict[str, Any], base: Path, bs: BatchSettings, common: Mapping[str, Any]) -> Job:
    cls = BATCH_MODES[bs.mode]
    photo = _take(row, _PHOTO)
    styles, output = _take(row, _STYLE), _take(row, _OUTPUT)
    values = {**common}
    for key, value in row.items():
        name = _setting_name(cls, key)
        values[name] = _value(cls, name, value, base)
    if photo is None:
        raise UserError("no photo; give the photo's file in a 'photo' column")
    photo = str(check_input_file(_resolve(photo, base), "a photo"))
    paintings = [str(_resolve(p, base)) for p in _listed(styles)] if styles is not None else bs.style_images or []
    paintings = _check_paintings(bs.mode, paintings, values)
    make(cls, values)  # every setting checked as the call checks it
    job = Job(where, photo, paintings, values, str(output) if output is not None else "")
    job.files = [f for f in dict.fromkeys([photo, *paintings, *files_in(values)])]
    return job


def _take(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    found = [k for k in row if _normal(k) in names]
    return row.pop(found[0]) if found else None


def _normal(key: str) -> str:
    return str(key).strip().lstrip("-").replace("-", "_").lower()


def _setting_name(cls: type, key: str) -> str:
    """A column's setting: its name (style_weight) or its flag (--style-weight, style-weights)."""
    wanted = _normal(key)
    for f, _ in options(cls):
        if wanted in (f.name, _normal(flag_of(cls, f.name))):
            return f.name
    mode = next(m for m, c in BATCH_MODES.items() if c is cls)
    raise UserError(f"unknown setting '{key}' for --mode {mode}; use the names of `dreamstyle {mode} --help`'s "
                    "options, such as style_weight or --style-weight")


def _value(cls: type, name: str, value: Any, base: Path) -> Any:
    """A cell's value as the setting takes it: text parsed by the setting's kind (a list's items separated by
    ';'), and a file named relative to the list's folder."""
    o = next(o for f, o in options(cls) if f.name == name)
    if isinstance(value, str):
        items = _listed(value) if o.many else [value]
        try:
            parsed = [parse_kind("onoff" if o.onoff else o.kind, item) for item in items]
        except ValueError as exc:
            raise SettingError(name, f"must be {exc}") from None
        value = parsed if o.many else parsed[0]
    if o.kind in ("path", "paths", "text"):
        value = [_resolve(v, base, keep=True) for v in value] if isinstance(value, list) else \
            _resolve(value, base, keep=True)
    return value


def _listed(value: Any) -> list[str]:
    return [p.strip() for p in value.split(";") if p.strip()] if isinstance(value, str) else [str(p) for p in value]


def _resolve(value: Any, base: Path, keep: bool = False) -> Any:
    """A relative file name from the list's folder; with ``keep``, text that names no file there stays as it is."""
    if not isinstance(value, str) or Path(value).is_absolute() or base == Path("."):
        return value
    candidate = base / value
    return str(candidate) if not keep or candidate.is_file() else value


def _check_paintings(mode: str, paintings: list[str], values: dict[str, Any]) -> list[str]:
    """The paintings a job paints in (stylize); apply's one painting becomes its fast style's (in ``values``)."""
    for painting in paintings:
        check_input_file(painting, "a painting")
    if mode == "stylize":
        if not paintings:
            raise SettingError("style_images", "is needed by --mode stylize: give the painting(s) with --style, or "
                               "in a 'style' column")
        return paintings
    if paintings and mode == "dream":
        raise SettingError("style_images", "is for --mode stylize and apply; --mode dream does not use it")
    if len(paintings) > 1:
        raise SettingError("style_images", "takes one painting in --mode apply (its fast style)")
    if paintings:
        values["style_image"] = paintings[0]
    elif mode == "apply":
        _check_model(str(values.get("model", "starry_night")))
    return []


def _check_model(model: str) -> None:
    """An apply job's model: a bundled style or a file, known before any work (torch-free)."""
    if find_bundled(model) is None and not Path(model).is_file():
        raise UserError(f"unknown style '{model}'; choose a bundled style ({', '.join(bundled_styles())}) or give "
                        "a model file")


def _precheck(mode: str, jobs: list[Job]) -> None:
    """The run's own checks that need no image (devices, taps, dream targets), once per distinct settings."""
    from .precheck import precheck

    seen: set[str] = set()
    for job in jobs:
        text = json.dumps(job.settings, sort_keys=True, default=str)
        if text not in seen:
            seen.add(text)
            try:
                precheck(mode, make(BATCH_MODES[mode], job.settings))
            except UserError as exc:
                raise UserError(f"{job.where}: {message_for(exc)}; no job was started") from None


# --- output names, the manifest ----------------------------------------------------------------------------

def output_folder(output: str | os.PathLike) -> Path:
    """The output folder (it may not exist yet, but its name must not be a file's)."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o '{output}' is a file; give a folder for the outputs (it is made if missing)")
    return out


def name_outputs(jobs: list[Job], folder: Path, mode: str) -> None:
    """Each job's output file name (its own, or the photo's name as .png; a repeat gets _2, _3, ...) and key."""
    taken: set[str] = set()
    digests: dict[str, str] = {}
    for job in jobs:
        name = job.output or Path(job.photo).stem + ".png"
        if Path(name).name != name or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{job.where}: output '{name}' must be a file name such as out.png, inside -o's folder")
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name in taken:
            name, n = f"{stem}_{n}{suffix}", n + 1
        taken.add(name)
        job.output = name
        check_output_path(folder / name)
        job.key = _key(job, mode, digests)


def _key(job: Job, mode: str, digests: dict[str, str]) -> str:
    """A hash of what the job's result depends on: the mode, the settings and its files' contents."""
    for path in job.files:
        if path not in digests:
            digests[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    named = {path: f"sha256:{digests[path]}" for path in job.files}
    text = json.dumps({"mode": mode, "job": swap({k: v for k, v in job.spec(mode).items() if k != "files"}, named)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Manifest:
    """``OUTDIR/dreamstyle-batch.json``: output name -> the key of the job that wrote it (rewritten atomically)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        self.entries: dict[str, Any] = {}
        if self.path.is_file():
            try:
                self.entries = dict(json.loads(self.path.read_text()).get("jobs", {}))
            except (ValueError, AttributeError, TypeError):
                self.entries = {}  # unreadable: every job is redone

    def done(self, job: Job) -> bool:
        entry = self.entries.get(job.output)
        return isinstance(entry, dict) and entry.get("key") == job.key and (self.path.parent / job.output).is_file()

    def record(self, job: Job) -> None:
        self.entries[job.output] = {"key": job.key, "where": job.where}
        with atomic_path(self.path) as tmp, open(tmp, "w") as f:
            json.dump({"jobs": self.entries}, f, indent=1, sort_keys=True)


# --- running them ---------------------------------------------------------------------------------------------

def batch(inputs: str | os.PathLike, output: str | os.PathLike, bs: BatchSettings, common: Mapping[str, Any],
          events: Run, function: JobFunction = run_job, on_job_event: JobEvents | None = None) -> BatchReport:
    """Every job of ``inputs`` not already done in ``output`` (a folder), on the local pool or on Ray; one step
    of ``events`` per job finished or failed; each job's own Step events to ``on_job_event(output name,
    event)`` as they happen. ``function`` runs one job in a worker (tests wrap it)."""
    folder = output_folder(output)
    jobs = read_jobs(inputs, bs, common)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the output folder '{folder}': {e.strerror or e}") from None
    name_outputs(jobs, folder, bs.mode)
    manifest = Manifest(folder)
    todo = [job for job in jobs if not manifest.done(job)]
    report = BatchReport(folder, len(jobs), skipped=len(jobs) - len(todo))
    if todo:
        _fast_styles(todo, bs, events)
        events.expect(len(todo), 0)
        pool = _pool(bs, len(todo))
        report.workers = min(len(todo), pool.workers)
        try:
            _drive(pool, todo, function, bs, manifest, report, events, on_job_event)
        except KeyboardInterrupt as exc:
            pool.close(wait=False)
            raise Interrupted(None, None, events.done, events.total, stopped_by_sigterm(exc)) from None
        except BaseException:
            pool.close(wait=False)
            raise
        pool.close()
    events.finish(None, folder, {"jobs": report.total, "written": len(report.written), "skipped": report.skipped,
                                 "failed": len(report.failed)})
    return report


def _pool(bs: BatchSettings, jobs: int) -> LocalPool | RayPool:
    """Ray if asked for; else local processes, as many as free cores (or ``workers``) and no more than jobs,
    with the free cores shared among them as torch threads (processes x threads <= cores)."""
    if bs.ray:
        return RayPool(bs.ray, bs.cpus_per_job, bs.gpus_per_job, bs.retries)
    from ..threads import free_cores

    free = free_cores()
    workers = max(1, min(jobs, bs.workers or free))
    return LocalPool(workers, max(1, free // workers))


def _fast_styles(jobs: list[Job], bs: BatchSettings, events: Run) -> None:
    """apply with a painting: its fast style fine-tuned (or found in the cache) once, here, not in every worker;
    the jobs then apply that model file."""
    if bs.mode != "apply":
        return
    from .apply import check_fast_style_settings, with_fast_style

    made: dict[str, str] = {}
    for job in jobs:
        s = make(BATCH_MODES["apply"], job.settings)
        if s.style_image is None:
            continue
        if str(s.style_image) not in made:
            check_fast_style_settings(s)
            made[str(s.style_image)] = str(with_fast_style(s, Run("apply", 0, cancel=events.cancel), 0).model)
        job.settings = {**job.settings, "model": made[str(s.style_image)], "style_image": None, "style_data": None}
        job.files = [*job.files, made[str(s.style_image)]]


def _drive(pool: LocalPool | RayPool, todo: list[Job], function: JobFunction, bs: BatchSettings,
           manifest: Manifest, report: BatchReport, events: Run, on_job_event: JobEvents | None) -> None:
    """Keep the pool's slots busy; write each result as it comes; retry, or report, each failure."""
    channel = pool.channel() if on_job_event is not None else None

    def submit(job: Job) -> Future:
        return pool.submit(function, {**job.spec(bs.mode), "name": job.output, "channel": channel}, job.files)

    def land(job: Job, result: dict[str, Any]) -> None:
        save_image(_image(result), report.folder / job.output, result["params"])
        manifest.record(job)
        report.written.append(report.folder / job.output)
        events.step(job.output, 0.0)

    def fail(job: Job, error: str) -> None:
        report.failed.append((f"{job.where} ({job.output})", str(error)))
        events.step(job.output, 0.0)

    def tick() -> None:
        if channel is not None and on_job_event is not None:
            drain(channel, on_job_event)
        events.check()

    drive(pool, todo, submit, _outcome, land, fail, bs.retries, tick)


def _outcome(future: Future) -> tuple[dict[str, Any] | None, str | None, bool]:
    """(result, None, _) for a job done; (None, its one-line error, whether to try again) for one that failed."""
    exc = future.exception()
    if exc is None:
        result = future.result()
        if "error" in result:
            return None, result["error"], bool(result.get("retry"))
        return result, None, False
    if isinstance(exc, BrokenProcessPool):
        return None, "its worker process died", True
    name = type(exc).__name__
    if "Crashed" in name or "Died" in name:  # Ray has retried it already
        return None, f"its Ray worker died ({name}), on every try", False
    lines = str(exc).strip().splitlines()
    return None, message_for(exc) or f"{name}: {lines[0][:200] if lines else ''}", False


def _image(result: dict[str, Any]) -> Any:
    from PIL import Image

    return Image.frombytes(result["mode"], tuple(result["size"]), result["pixels"])

