"""The studio's state and its rules for what the page sends (torch-free to import; used by :mod:`.serve`).

A value from the page never names a file on the server: every field that names a file (the photo, the
styles, masks, init, guide, image, weights, the apply model) is an example's or a bundled style's name,
or the id of an upload this server gave, compared case-insensitively. Anything else gets one refusal
that does not depend on what exists on the disk (nothing is looked up there). Settings are typed
strictly (``64.7`` or ``true`` is no size) and checked as the API's prepare checks them, so a bad job is a
400 at submission, not a failure later. The result's embedded parameters and "Copy as CLI command" carry
the names the user's files had, never a server path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import re
import shlex
import shutil
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from PIL import Image

from ..errors import DreamstyleError, message_for
from ..events import CancelToken, Done, Event
from ..jobs import Job, JobQueue, QueueFull
from ..settings import (
    INITS,
    ApplySettings,
    DreamSettings,
    ExploreSettings,
    Opt,
    StylizeSettings,
    flag_of,
    make,
    options,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODES: dict[str, type] = {"stylize": StylizeSettings, "dream": DreamSettings, "explore": ExploreSettings,
                          "apply": ApplySettings}
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 36_000_000  # a 6000 x 6000 photo; larger ones are refused with a message
MODEL_SUFFIXES = (".pt", ".onnx")
MULTIPART_SLACK = 64 * 1024  # a multipart body's headers and boundaries around the file
JOB_BODY_BYTES = 1024 * 1024
STYLERS_KEPT = 4  # trained networks kept loaded for live frames (least recently used go first)
UPLOAD_ID = re.compile(r"[0-9a-f]{32}\.(png|pt|onnx)")
LIVE_NOTE = "live frames from every open page are styled one at a time, in one line"
# The bundled examples as the page offers them: photos and paintings, with their titles (others go in both lists).
EXAMPLE_KINDS = {"chelsea": ("photo", "Chelsea the cat"), "astronaut": ("photo", "Astronaut (NASA portrait)"),
                 "starry_night": ("painting", "The Starry Night, van Gogh"),
                 "great_wave": ("painting", "The Great Wave, Hokusai"), "the_scream": ("painting", "The Scream, Munch")}


@dataclasses.dataclass
class Upload:
    path: Path
    kind: str  # image or model
    name: str  # the name the browser sent (no folders), for the command line and the result's parameters
    created: float = dataclasses.field(default_factory=time.time)


class Studio:
    """The server's state: the job queue, the uploads, the cached stylers for live frames."""

    def __init__(self, root: Path, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
                 preview_every: int = 8, max_waiting: int = 20, keep_seconds: float = 6 * 3600) -> None:
        self.root = root
        self.upload_dir = root / "uploads"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.queue = JobQueue(root / "jobs", keep_seconds=keep_seconds, preview_every=preview_every,
                              max_waiting=max_waiting)
        self.queue.on_sweep.append(self.forget_old_uploads)
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.uploads: dict[str, Upload] = {}
        self.uploads_lock = threading.Lock()
        self.examples = {p.stem.lower(): p for p in sorted(EXAMPLES.glob("*.jpg"))}
        self.stylers: OrderedDict[str, Any] = OrderedDict()
        self.styler_lock = threading.Lock()
        self.warm = "off"  # off, warming, ready, failed
        self.warm_cancel = CancelToken()
        self.stopped_cleanly = True

    # --- inputs -----------------------------------------------------------------------------------

    def forget_old_uploads(self) -> None:
        """Delete uploads older than the jobs are kept (also run by the queue's timed sweep)."""
        limit = time.time() - self.queue.keep_seconds
        with self.uploads_lock:
            old = [k for k, up in self.uploads.items() if up.created < limit]
            for key in old:
                self.uploads.pop(key).path.unlink(missing_ok=True)

    def save_upload(self, data: bytes, filename: str) -> dict[str, Any]:
        """Check an uploaded file and store it under a random name; returns its id and facts."""
        self.forget_old_uploads()
        if len(data) > self.max_upload_bytes:
            raise HTTPException(413, f"the file is larger than the limit of {self.max_upload_bytes / 2**20:.0f} MB")
        if not data:
            raise HTTPException(400, "the file is empty")
        suffix = Path(_base_name(filename)).suffix.lower()
        if suffix in MODEL_SUFFIXES:  # a trained style network for apply
            name = _base_name(filename, "model" + suffix)
            upload = self._store(suffix, "model", name, lambda path: path.write_bytes(data))
            return {"id": upload, "kind": "model", "name": name}
        image = self.decode_image(data, _base_name(filename, "the file"))
        name = _base_name(filename, "photo.png")
        upload = self._store(".png", "image", name, lambda path: image.save(path))
        return {"id": upload, "kind": "image", "width": image.width, "height": image.height, "name": name}

    def _store(self, suffix: str, kind: str, name: str, write: Callable[[Path], Any]) -> str:
        upload_id = uuid.uuid4().hex + suffix
        path = self.upload_dir / upload_id
        write(path)
        with self.uploads_lock:
            self.uploads[upload_id] = Upload(path, kind, name)
        return upload_id

    def decode_image(self, data: bytes, name: str) -> Image.Image:
        """Bytes -> an RGB image, refused (400/413) when it is no image or has too many pixels; the pixel count
        is checked before anything is decoded, so a decompression bomb costs nothing."""
        too_many = f"the image has more than {self.max_pixels / 1e6:.0f} megapixels, the limit; make it smaller"
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > self.max_pixels:
                    raise HTTPException(413, f"the image is {width} x {height} pixels; the limit is "
                                             f"{self.max_pixels / 1e6:.0f} megapixels")
                im.load()
                return im.convert("RGB")
        except HTTPException:
            raise
        except Image.DecompressionBombError:
            raise HTTPException(413, too_many) from None
        except Exception:  # noqa: BLE001 - decoders raise many types (OSError, SyntaxError, struct.error)
            raise HTTPException(400, f"'{name[:80]}' is not an image that can be read (damaged, or another kind "
                                     "of file); upload a JPEG, PNG or WebP") from None

    def result_as_upload(self, job: Job) -> dict[str, Any]:
        """A job's result, stored as a new image upload (to use it as the next photo); returns what
        :meth:`save_upload` returns."""
        result = job.result
        if result is None or not result.is_file():
            raise HTTPException(404, "that job has no picture yet")
        with Image.open(result) as im:
            width, height = im.size
        name = f"{job.mode}-{job.id}.png"
        upload = self._store(".png", "image", name, lambda path: shutil.copyfile(result, path))
        return {"id": upload, "kind": "image", "width": width, "height": height, "name": name}

    def refs_for(self, params: dict[str, Any]) -> dict[str, Any]:
        """The images a dreamstyle PNG's parameters name (by the user's file names), found again among the examples
        and this server's uploads: ``{"content": ref or None, "styles": [ref...], "missing": [name...]}``. A name is
        only compared, never opened."""
        content = params.get("content") or params.get("image")
        styles = params.get("styles") or []
        out: dict[str, Any] = {"content": None, "styles": [], "missing": []}
        for name, many in [(content, False), *[(n, True) for n in (styles if isinstance(styles, list) else [])]]:
            if not isinstance(name, str) or not name:
                continue
            ref = self.ref_named(name)
            if ref is None:
                out["missing"].append(name[:100])
            elif many:
                out["styles"].append(ref)
            else:
                out["content"] = ref
        return out

    def ref_named(self, name: str) -> str | None:
        """``example:NAME`` for an example's file name, else the newest image upload of that name, else None."""
        path = self.examples.get(Path(name).stem.lower())
        if path is not None and path.name.lower() == name.lower():
            return f"example:{path.stem.lower()}"
        with self.uploads_lock:
            found = [(up.created, key) for key, up in self.uploads.items() if up.kind == "image" and up.name == name]
        return max(found)[1] if found else None

    def upload(self, ref: Any, kind: str) -> Upload | None:
        """The upload ``ref`` names (an id this server gave, any case), or None. Never looks at the disk."""
        if not isinstance(ref, str) or not UPLOAD_ID.fullmatch(ref.lower()):
            return None
        with self.uploads_lock:
            found = self.uploads.get(ref.lower())
        return found if found is not None and found.kind == kind else None

    def image(self, ref: Any, what: str, names: dict[str, str]) -> Path:
        """An upload id or ``example:NAME`` -> its file, its name recorded in ``names``; one 400 for anything
        else, whatever it is (a path, a missing file, another kind of upload)."""
        if isinstance(ref, str) and ref.lower().startswith("example:"):
            path = self.examples.get(ref[len("example:"):].lower())
            if path is not None:
                names[str(path)] = path.name
                return path
        found = self.upload(ref, "image")
        if found is not None:
            names[str(found.path)] = found.name
            return found.path
        if ref is None or ref == "" or ref == []:
            raise HTTPException(400, f"choose a {what} image")
        raise HTTPException(400, f"the {what} image is not an example or a file uploaded on this page; pick an "
                                 "example or upload it again")

    def model(self, ref: Any, names: dict[str, str]) -> str:
        """A bundled style's name (any case) stays a name; an uploaded model's id becomes its file. One 400 for
        anything else, the same for every spelling, so the errors tell nothing about the server's disk."""
        from ..fastnet import bundled_styles

        styles = bundled_styles()
        if isinstance(ref, str) and ref.lower() in styles:
            return ref.lower()
        fast = fast_styles().get(ref) if isinstance(ref, str) else None
        if fast is not None:  # a painting's fast style from the cache, named by its key (never by a path)
            names[fast["model"]] = fast["painting"]
            return fast["model"]
        found = self.upload(ref, "model")
        if found is not None:
            names[str(found.path)] = found.name
            return str(found.path)
        raise HTTPException(400, f"the model must be a bundled style ({', '.join(styles) or 'none installed'}) "
                                 "or a .pt or .onnx model uploaded on this page")

    def _files(self, cls: type, values: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
        """The page's values -> the API's: every setting that names a file is resolved by the rules above.
        ``values`` is updated to the canonical spellings (lower case), which the command line shows."""
        out = dict(values)
        for f, o in options(cls):
            if f.name not in out:
                continue
            value = out[f.name]
            if cls is ApplySettings and f.name == "model":
                out[f.name] = self.model(value, names)
                values[f.name] = value.lower()
            elif f.name == "style_data":
                raise HTTPException(400, "a folder of training photos is for the command line; the studio "
                                         "fine-tunes on the photos shipped with dreamstyle")
            elif f.name == "weights":
                if not (isinstance(value, str) and value.lower() == "random"):
                    raise HTTPException(400, "weights may only be 'random' here: a weights file is for the "
                                             "command line")
                out[f.name] = values[f.name] = "random"
            elif f.name == "init" and isinstance(value, str) and value.lower() in INITS:
                out[f.name] = values[f.name] = value.lower()
            elif o.kind in ("path", "paths") or f.name == "init":
                items = value if isinstance(value, list) else [value]
                paths = [str(self.image(v, f.name, names)) for v in items]
                out[f.name] = paths if isinstance(value, list) else paths[0]
                values[f.name] = [v.lower() for v in items] if isinstance(value, list) else value.lower()
        return out

    # --- jobs ---------------------------------------------------------------------------------------

    def start(self, body: dict[str, Any]) -> Job:
        """Check a job the page sent (everything the API's prepare checks before slow work) and queue it."""
        mode = body.get("mode")
        if not isinstance(mode, str) or mode not in MODES:
            raise HTTPException(400, f"unknown mode {_shown(mode)}; choose one of {', '.join(MODES)}")
        cls = MODES[mode]
        raw = body.get("settings") or {}
        if not isinstance(raw, dict):
            raise HTTPException(400, 'settings must be a JSON object of name: value, e.g. {"size": 512}')
        values = form_values(cls, raw)
        names: dict[str, str] = {}  # a server path -> the name the user knows the file by
        api_values = self._files(cls, values, names)
        from .. import api

        try:
            settings = make(cls, api_values)  # checked here, so a bad value is a 400 and no job
            api.precheck(mode, settings)  # the run's own checks before slow work: a bad tap is a 400 too
        except DreamstyleError as e:
            raise HTTPException(400, message_for(e)) from None

        params: dict[str, Any] = {"mode": mode, "settings": values}
        content: Path | None = None
        styles: list[Path] = []
        if mode != "explore" or body.get("content"):
            content = self.image(body.get("content"), "content" if mode == "stylize" else "photo", names)
            params["content"] = body.get("content")
        if mode == "stylize":
            refs = body.get("styles") or []
            refs = refs if isinstance(refs, list) else [refs]
            styles = [self.image(r, "style", names) for r in refs]
            if not styles:
                raise HTTPException(400, "choose at least one style image")
            params["styles"] = refs
        if mode == "explore" and content is not None:
            api_values["image"] = str(content)
        params["names"] = {"content": names[str(content)] if content is not None else None,
                           "styles": [names[str(p)] for p in styles], "files": _file_names(values, api_values, names)}
        key = json.dumps({k: params.get(k) for k in ("mode", "content", "styles", "settings")}, sort_keys=True)

        def call(job: Job) -> Any:
            output, run = job.folder / "result.png", self._run_args(job, names)
            if mode == "stylize":
                return api.stylize(content, styles, output=output, **run, **api_values)
            if mode == "apply" and api_values.get("style_image") is not None:  # the user's name for the painting
                api_values["style_name"] = names.get(str(api_values["style_image"]))
            if mode in ("dream", "apply"):
                fn = api.dream if mode == "dream" else api.apply
                return fn(content, output=output, **run, **api_values)
            return api.explore(output=output, **run, **api_values)
        slow = mode == "apply" and settings.style_image is not None and _needs_fine_tune(settings)
        try:
            return self.queue.submit(mode, call, params, key, slow=slow)
        except QueueFull as e:
            raise HTTPException(429, str(e)) from None

    def _run_args(self, job: Job, names: dict[str, str]) -> dict[str, Any]:
        forward = self.queue.on_event(job)

        def on_event(event: Event) -> None:
            if isinstance(event, Done) and event.path is not None:  # the user's file names, not server paths
                params = rename_embedded(Path(event.path), lambda p: self.user_names(p, names))
                event = dataclasses.replace(event, params=params or self.user_names(event.params, names))
            forward(event)
        return {"progress": False, "on_event": on_event, "preview_every": self.queue.preview_every,
                "cancel": job.cancel}

    def user_names(self, value: Any, names: dict[str, str]) -> Any:
        """``value`` with every server path in it replaced by the name the user knows that file by."""
        if isinstance(value, str):
            if value in names:
                return names[value]
            return Path(value).name if value.startswith((str(self.root), str(EXAMPLES))) else value
        if isinstance(value, dict):
            return {k: self.user_names(v, names) for k, v in value.items()}
        if isinstance(value, list):
            return [self.user_names(v, names) for v in value]
        return value

    # --- live frames -----------------------------------------------------------------------------

    def live(self, frame: bytes, model: str, size: int, snapshot: bool = False) -> tuple[bytes, float]:
        """One webcam frame through a trained network, at once (not queued); returns the JPEG (``snapshot``: a
        PNG with the settings embedded, as apply writes them) and how long the frame waited for the frames of
        other pages (one line for all)."""
        from .. import api
        from ..images import PARAMS_KEY, array_from_image, header, image_from_array, write_png

        ref = self.model(model, {})
        image = self.decode_image(frame, "the frame")
        image.thumbnail((size, size))
        asked = time.monotonic()
        with self.styler_lock:
            waited = time.monotonic() - asked
            styler = self.stylers.get(ref)
            if styler is None:
                try:
                    styler = api.load_style(ref)
                except DreamstyleError as e:
                    raise HTTPException(400, str(e)) from None
                self.stylers[ref] = styler
                while len(self.stylers) > STYLERS_KEPT:
                    self.stylers.popitem(last=False)
            self.stylers.move_to_end(ref)
            out = styler(array_from_image(image))
        buf = io.BytesIO()
        if snapshot:  # with its parameters, as every output carries them
            params = header("apply", content="camera.png", model=model.lower(), size=size)
            write_png(image_from_array(out), buf, {PARAMS_KEY: json.dumps(params, sort_keys=True)})
        else:
            image_from_array(out).save(buf, format="JPEG", quality=85)
        return buf.getvalue(), waited

    def close(self, timeout: float = 60.0) -> None:
        """Cancel every job and wait for the running ones to stop before their files go."""
        self.warm_cancel.cancel()
        self.stopped_cleanly = self.queue.close(timeout)
        with self.styler_lock:
            self.stylers.clear()


def form_values(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The form's fields -> API keyword values, strictly: empty fields mean the default; list kinds split on
    spaces; a value of the wrong type (a list for a number, 64.7 or true for a whole number) is a 400."""
    known = {f.name: o for f, o in options(cls)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        o = known.get(name)
        if o is None:
            raise HTTPException(400, f"unknown setting {_shown(name)}")
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            continue
        values[name] = _typed(name, o, value)
    return values


def fast_styles() -> dict[str, dict[str, str]]:
    """The cached fast styles the page may use, by key: the painting's name and the model file (its ONNX copy
    where there is one)."""
    from ..fastnet.styles import cached_styles

    out = {}
    for entry in cached_styles():
        key = Path(entry["file"]).stem
        out[key] = {"painting": str(entry.get("painting", key)), "model": entry["onnx"] or entry["file"]}
    return out


def _needs_fine_tune(settings: Any) -> bool:
    """Whether an apply with a painting will fine-tune it first (minutes): then it waits in the slow lane."""
    from .. import api

    return not api.has_cached_style(settings)


def _typed(name: str, o: Opt, value: Any) -> Any:  # noqa: C901 - one branch per kind
    def refuse(what: str) -> HTTPException:
        return HTTPException(400, f"{name} must be {what}, got {_shown(value)}")

    def number(v: Any, whole: bool) -> int | float:
        if isinstance(v, str):
            try:
                v = int(v.strip()) if whole else float(v.strip())
            except ValueError:
                raise refuse("a whole number" if whole else "a number") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise refuse("a whole number" if whole else "a number")
        if whole and isinstance(v, float):
            if not (math.isfinite(v) and v.is_integer()):
                raise refuse("a whole number")
            return int(v)
        if not whole and isinstance(v, int):
            try:
                return float(v)
            except OverflowError:
                raise refuse("a finite number") from None
        return v

    def items(v: Any, sep: str | None) -> list[Any]:
        if isinstance(v, str):
            return v.replace(",", " ").split() if sep == "," else v.split(sep)
        if isinstance(v, list):
            return v
        raise refuse("a list")

    if o.kind == "int":
        return number(value, True)
    if o.kind == "float":
        return number(value, False)
    if o.kind == "floats":
        return [number(v, False) for v in items(value, ",")]
    if o.kind == "channels":
        return [number(v, True) for v in items(value, ",")]
    if o.kind == "bool":
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        if text in ("on", "true", "1", "yes"):
            return True
        if text in ("off", "false", "0", "no"):
            return False
        raise refuse("on or off")
    if o.many:
        parts = items(value, None)
        if not all(isinstance(v, str) for v in parts):
            raise refuse("text")
        return parts
    if not isinstance(value, str):
        raise refuse("text")
    return value


def _shown(value: Any) -> str:
    """A value from the page, short and safe to show in one line."""
    if isinstance(value, str):
        return repr(value[:60] + ("..." if len(value) > 60 else ""))
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _file_names(values: dict[str, Any], api_values: dict[str, Any], names: dict[str, str]) -> dict[str, str]:
    """The page's ref -> the user's file name, for every setting that names a file (for the command line)."""
    out = {}
    for name, value in values.items():
        resolved = api_values.get(name)
        pairs = zip(value, resolved, strict=False) if isinstance(value, list) and isinstance(resolved, list) \
            else [(value, resolved)]
        out.update({str(v): names[str(r)] for v, r in pairs if str(r) in names})
    return out


def _base_name(filename: str | None, fallback: str = "") -> str:
    """The last part of a browser's file name, printable, at most 100 characters (never used as a path)."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:100]
    return fallback if name in ("", ".", "..") else name


def rename_embedded(path: Path, change: Callable[[Any], Any]) -> dict[str, Any] | None:
    """Rewrite the parameters embedded in a PNG (its ``dreamstyle`` text chunk) through ``change``, in place
    and atomically, without re-encoding the picture; returns the new parameters (None: the file has none)."""
    from ..images import atomic_path

    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    out, pos, found = [data[:8]], 8, None
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        chunk = data[pos:end]
        if kind == b"tEXt" and found is None:
            key, _, text = data[pos + 8:pos + 8 + length].partition(b"\0")
            if key == b"dreamstyle":
                with contextlib.suppress(ValueError, RecursionError):
                    found = change(json.loads(text.decode("latin-1")))
                    body = b"dreamstyle\0" + json.dumps(found, sort_keys=True).encode("ascii")
                    crc = struct.pack(">I", zlib.crc32(b"tEXt" + body))
                    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + crc
        out.append(chunk)
        pos = end
    if not isinstance(found, dict):
        return None
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(b"".join(out))
    return found


def command_line(job: Job) -> str:
    """The ``dreamstyle ...`` command that does what the job did, with the user's file names."""
    mode, values = job.mode, dict(job.params.get("settings") or {})
    cls = MODES[mode]
    names = job.params.get("names") or {}
    files: dict[str, str] = names.get("files") or {}
    content = names.get("content") or "photo.png"
    parts = ["dreamstyle", mode]
    if mode == "stylize":
        parts += [content, *(names.get("styles") or [])]
    elif mode in ("dream", "apply"):
        parts.append(content)
    parts += ["-o", "result.png"]
    if mode == "explore" and names.get("content"):
        values["image"] = content
    for f, o in options(cls):
        if f.name not in values or not o.cli or values[f.name] == f.default:
            continue
        value = values[f.name]
        value = [files.get(str(v), v) for v in value] if isinstance(value, list) else files.get(str(value), value)
        flag = flag_of(cls, f.name)
        if o.kind == "bool" and not o.onoff:
            if value:
                parts.append(flag)
        elif o.kind == "bool":
            parts += [flag, "on" if value else "off"]
        elif isinstance(value, list):
            parts += [flag, *[str(v) for v in value]] if o.kind != "channels" else [flag, ",".join(map(str, value))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)
