"""Image I/O: robust loading, resizing, tensor conversion and atomic saving with embedded parameters."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import numbers
import os
import stat
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .errors import RunError, UserError
from .events import deferred_signals
from .version import __version__

if TYPE_CHECKING:
    import torch

# Output extensions we allow, in the order shown to the user, and the Pillow format for each.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                  ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
PARAMS_KEY = "dreamstyle"  # PNG text-chunk key; prefix of the EXIF ImageDescription elsewhere
_DESCRIPTION = 0x010E  # EXIF/TIFF ImageDescription tag
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}

# What a folder of photos (training data, a batch to apply a style to) is searched for.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"})


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (and its subfolders with ``recursive``), by name."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def array_from_image(img: Image.Image) -> np.ndarray:
    """An RGB image as an (H, W, 3) float32 array in [0, 1] (what trained style networks take, torch-free)."""
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def image_from_array(a: np.ndarray) -> Image.Image:
    """An (H, W, 3) array in [0, 1] as an RGB image, clipped and rounded."""
    return Image.fromarray((np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def _fail(msg: str) -> UserError:
    """A UserError whose message is guaranteed to be one line."""
    return UserError(" ".join(msg.split()))


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _stat_problem(p: Path) -> str | None:
    """Why ``p`` cannot even be looked at (a name or path too long for the file system), or None."""
    try:
        p.exists()
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return "the file name or path is too long for the file system; use a shorter one"
        return _reason(e)
    return None


def check_input_file(path: str | os.PathLike, kind: str = "an image file") -> Path:
    """Check that ``path`` names an existing regular file, so reading it cannot hang; return it as a Path.

    A missing file, a folder, a too-long name and anything that is not a regular file (a FIFO, a device,
    a socket, or a link to one) get a one-line UserError that names the problem; ``kind`` says what was
    expected ("an image file", "a video file", ...).
    """
    p = Path(path)
    problem = _stat_problem(p)
    if problem:
        raise _fail(f"cannot read '{_short(p)}': {problem}")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if p.is_symlink():
            raise _fail(f"cannot read '{_short(p)}': it is a link to a missing file; check the path") from None
        raise _fail(f"cannot read '{_short(p)}': file not found; check the path") from None
    except PermissionError:
        raise _fail(f"cannot read '{_short(p)}': permission denied; check the file's permissions") from None
    except OSError as e:
        raise _fail(f"cannot read '{_short(p)}': {_reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(f"cannot read '{_short(p)}': it is a folder, not {kind}; give the path of {kind}")
    if not stat.S_ISREG(st.st_mode):
        what = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device" if
                stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket" if
                stat.S_ISSOCK(st.st_mode) else "not a regular file")
        link = " (through a link)" if p.is_symlink() else ""
        raise _fail(f"cannot read '{_short(p)}': it is {what}{link}, not {kind}; give the path of a regular file")
    if not os.access(p, os.R_OK):
        raise _fail(f"cannot read '{_short(p)}': permission denied; check the file's permissions")
    return p


def refuse_output_over_inputs(output: str | os.PathLike, inputs: Iterable[object]) -> None:
    """Refuse an output path that names one of the inputs (same file, through any spelling or link).

    A result written over the only copy of a photo is lost data, so every command checks this up front.
    Inputs that are not paths (None, a PIL image, a style name that names no file) are skipped.
    """
    out = Path(output)
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            continue
        src = Path(item)
        same = False
        with contextlib.suppress(OSError, ValueError):
            same = src.exists() and out.exists() and os.path.samefile(src, out)
        with contextlib.suppress(OSError, ValueError):
            same = same or src.resolve() == out.resolve()
        if same:
            raise _fail(f"the output '{_short(out)}' is also an input ('{_short(src)}'); writing it would replace "
                        "your original, so give the output another name")


def _open_loaded(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, turning every failure into a UserError."""
    p = check_input_file(path)
    limit = Image.MAX_IMAGE_PIXELS  # read now, so a changed limit applies
    too_big = (f"cannot read '{p}': the image has more than {limit} pixels (Pillow's decompression-bomb "
               f"limit); downscale it first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w <= 0 or h <= 0:
                    raise _fail(f"cannot read '{p}': the image is empty ({w}x{h} pixels); "
                                "use a non-empty image")
                if limit is not None and w * h > limit:
                    raise _fail(too_big)
                im.load()
                return im
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _fail(too_big) from None
    except PermissionError:
        raise _fail(f"cannot read '{p}': permission denied; check the file's permissions") from None
    except Exception as e:  # decoders raise many types (OSError, SyntaxError, ValueError, struct.error, ...)
        raise _fail(f"cannot read '{p}': not a valid image, or the file is truncated or corrupt "
                    f"({_reason(e)}); use an intact PNG, JPEG, WebP, TIFF or BMP file") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.nan_to_num(np.asarray(im, dtype=np.float64))
        if im.mode == "F":
            scale = 255.0 if a.max() <= 1.0 else 1.0  # float data is either 0..1 or 0..255
        else:  # 16-bit data (I;16*, or mode I with values above 255) is scaled from 0..65535
            scale = 1 / 257 if im.mode != "I" or a.max() > 255 else 1.0
        im = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8))
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return im.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Load an image file as an upright, fully loaded RGB image; raise UserError on bad input."""
    im = _open_loaded(path)
    try:
        return _to_rgb(ImageOps.exif_transpose(im))
    except Exception as e:
        raise _fail(f"cannot read '{path}': cannot convert its colour mode {im.mode} to RGB "
                    f"({_reason(e)}); save it as an RGB PNG or JPEG first") from None


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Resize with LANCZOS so the long side is `size`, keeping the aspect ratio (each side >= 1)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise _fail(f"invalid image size {size!r}; use a positive whole number of pixels")
    return img.resize(long_side_size(img, int(size)), Image.Resampling.LANCZOS)


def long_side_size(img: Image.Image | tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) of ``img`` (an image, or its (width, height)) with its long side at ``size`` (each side
    >= 1), as resize_long_side makes it."""
    w, h = img if isinstance(img, tuple) else img.size
    return (size, max(1, round(h * size / w))) if w >= h else (max(1, round(w * size / h)), size)


def short_side(img: Image.Image, size: int) -> int:
    """The short side of ``img`` once its long side is ``size``."""
    return min(long_side_size(img, size))


def as_image(image: str | os.PathLike | Image.Image, what: str) -> tuple[Image.Image, str]:
    """A path or a PIL image -> (RGB image, the name to record for it in the output's parameters)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB"), f"<{what} image>"
    return load_image(image), str(image)


@dataclass(frozen=True)
class Picture:
    """An input image taken in once (decoded, upright, RGB) with the name its outputs record: a workflow
    takes each input in with :func:`take_in` and hands the picture down, and the checks and the levels ask
    it for what they need rather than reloading or re-measuring it."""

    image: Image.Image
    name: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def short_side(self, long_side: int) -> int:
        """Its short side, in pixels, once its long side is ``long_side``."""
        return short_side(self.image, long_side)

    def tensor(self, long_side: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """A (1, 3, H, W) tensor in [0, 1] with its long side at ``long_side``."""
        return resized_tensor(self.image, long_side, device)


def take_in(image: str | os.PathLike | Image.Image | Picture, what: str) -> Picture:
    """A path, a PIL image or a picture -> a picture (loaded and checked once; ``what`` names it in errors)."""
    if isinstance(image, Picture):
        return image
    return Picture(*as_image(image, what))


def resized_tensor(img: Image.Image, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``img`` with its long side resized to ``size``, as a (1, 3, H, W) tensor on ``device``."""
    return to_tensor(resize_long_side(img, size)).to(device)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert an image to a (1, 3, H, W) float32 tensor in [0, 1]."""
    import torch

    a = np.array(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_from_array(a: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """An (H, W, 3) float array in [0, 1] as a (1, 3, H, W) float32 tensor on ``device``, without rounding."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))[None].to(device)


def to_image(t: torch.Tensor) -> Image.Image:
    """Convert a (1, 3, H, W) or (3, H, W) tensor (any dtype/device) to an RGB image; clamps and rounds."""
    import torch

    t = t.detach().to("cpu", torch.float32)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) tensor, got shape {tuple(t.shape)}")
    a = torch.nan_to_num(t).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(a.contiguous().numpy())


def check_output_path(path: str | os.PathLike) -> Path:
    """Check that an image can be written at `path` (extension, folder); call this before a long run."""
    p = Path(path)
    problem = _stat_problem(p)
    if problem:
        raise _fail(f"cannot write '{_short(p)}': {problem}")
    if p.is_dir():
        raise _fail(f"cannot write '{p}': it is a folder; give a file name such as '{p / 'out.png'}'")
    fmt = OUTPUT_FORMATS.get(p.suffix.lower())
    Image.preinit()  # PNG, JPEG and the other common plugins; all of them (30 ms) only when needed
    if fmt not in Image.SAVE:
        Image.init()
    if fmt not in Image.SAVE:
        usable = [ext for ext, f in OUTPUT_FORMATS.items() if f in Image.SAVE]
        ext = p.suffix or "(none)"
        raise _fail(f"cannot write '{p}': unsupported extension '{ext}'; use one of {', '.join(usable)}")
    return check_output_folder(p)


def check_output_folder(p: Path) -> Path:
    """Check that the folder of output ``p`` exists and can be written; return ``p``."""
    parent = p.parent
    if not parent.is_dir():
        raise _fail(f"output folder '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(f"cannot write to output folder '{parent}': permission denied; choose another folder")
    limit = _name_max(parent)
    if len(p.name.encode()) > limit:
        raise _fail(f"cannot write '{_short(p)}': the file name is {len(p.name.encode())} bytes, more than the "
                    f"{limit} the file system allows; use a shorter name")
    return p


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _short(p: Path, keep: int = 80) -> str:
    """A path for a one-line message: long ones are cut in the middle."""
    text = str(p)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(img: Image.Image, path: str | os.PathLike, params: dict | None = None) -> Path:
    """Save atomically (temp file, fsync, os.replace), embedding `params` as JSON where the format allows."""
    p = check_output_path(path)
    fmt = OUTPUT_FORMATS[p.suffix.lower()]
    text = None if params is None else json.dumps(params, sort_keys=True)
    options: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if text is not None and fmt in ("JPEG", "WEBP", "TIFF"):
        exif = Image.Exif()
        exif[_DESCRIPTION] = f"{PARAMS_KEY}:{text}"
        options["exif"] = exif
    if img.mode != "RGB":
        img = img.convert("RGB")
    with atomic_path(p) as tmp, open(tmp, "wb") as f:
        if fmt == "PNG":
            write_png(img, f, {PARAMS_KEY: text} if text is not None else {})
        else:
            img.save(f, format=fmt, **options)
        f.flush()
        os.fsync(f.fileno())
    return p


def write_png(img: Image.Image, f: BinaryIO, texts: dict[str, str]) -> None:
    """Write an RGB image as PNG, with ``texts`` as text chunks: every row Sub-filtered, run-length deflate.

    Pillow tries five filters on every row; one filter and run-length zlib make the files of stylized
    photos as small (2.86 MB against Pillow's 2.84 MB at 1024 x 1024) in a third of the time (26 ms
    against 72 ms; BENCHMARKS.md, issue 21). Any PNG reader, Pillow included, reads the result.
    """
    rows = np.asarray(img.convert("RGB"), dtype=np.uint8)
    height, width = rows.shape[:2]
    rows = rows.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = 1  # the Sub filter: each byte minus the byte one pixel to its left, modulo 256
    filtered[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=filtered[:, 4:])
    deflate = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_RLE)
    data = deflate.compress(filtered.data) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
    for key, value in texts.items():  # tEXt holds Latin-1; JSON's default escaping keeps to ASCII
        f.write(chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    f.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))


_USER_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temp file name beside ``path``: after the block it replaces ``path`` (durably); on error it is removed.

    So an output is either the old file or the complete new one, never half-written. Ctrl-C and SIGTERM
    wait until the write is done (the temp name is short, so any legal output name works).
    """
    with deferred_signals():
        try:
            fd, tmp = tempfile.mkstemp(prefix=".ds-", suffix=".tmp", dir=path.parent)
        except OSError as e:
            raise _write_error(path, e) from None
        os.close(fd)
        pending: str | None = tmp
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
            os.replace(tmp, path)
            pending = None
        except (OSError, ValueError) as e:
            raise _write_error(path, e) from None
        finally:
            if pending is not None:
                with contextlib.suppress(OSError):
                    os.unlink(pending)
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_error(path: Path, e: BaseException) -> UserError | RunError:
    """Permissions and names are the user's to fix (exit 2); a full disk or an I/O error is the run's (exit 1)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunError(f"cannot write '{_short(path)}': the disk is full; free some space and run again")
    if isinstance(e, OSError) and e.errno not in _USER_ERRNOS:
        return RunError(f"cannot write '{_short(path)}': {_reason(e)}")
    return _fail(f"cannot write '{_short(path)}': {_reason(e)}; check free disk space and permissions")


def header(command: str, **fields: Any) -> dict[str, Any]:
    """The start of every output's parameters: the version and the command, then ``fields``."""
    return {"dreamstyle": __version__, "command": command, **fields}


def read_params(path: str | os.PathLike) -> dict:
    """Read the parameters that save_image embedded; raise UserError if there are none."""
    return params_of(_open_loaded(path), f"'{_short(Path(path))}'")


def params_of(im: Image.Image, name: str) -> dict:
    """The parameters embedded in an opened image (a PNG text chunk, or the EXIF description elsewhere);
    UserError if there are none or they are damaged. ``name`` is how the messages call the image."""
    text = im.info.get(PARAMS_KEY)
    if text is None:
        with contextlib.suppress(Exception):
            desc = im.getexif().get(_DESCRIPTION)
            if isinstance(desc, bytes):
                desc = desc.decode("utf-8", "replace")
            if isinstance(desc, str) and desc.startswith(PARAMS_KEY + ":"):
                text = desc[len(PARAMS_KEY) + 1:]
    if text is None:
        raise _fail(f"{name} has no dreamstyle parameters; give an image saved by dreamstyle")
    try:
        params = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's recursion limit
        params = None
    if not isinstance(params, dict) or not _plain(params, PARAMS_DEPTH):
        raise _fail(f"{name} has damaged dreamstyle parameters (not a flat set of settings); "
                    "re-create the image with dreamstyle")
    return params


PARAMS_DEPTH = 4  # the deepest nesting real parameters have is 3 (a sheet's cells: dict > list > list > text)


def _plain(value: object, depth: int) -> bool:
    """Whether ``value`` is JSON nested at most ``depth`` levels, with text keys: what dreamstyle writes."""
    if isinstance(value, dict):
        return depth > 0 and all(isinstance(k, str) and _plain(v, depth - 1) for k, v in value.items())
    if isinstance(value, list):
        return depth > 0 and all(_plain(v, depth - 1) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def grid(cells: list[tuple[Image.Image, str]], columns: int) -> Image.Image:
    """Images in a grid of ``columns``, each under its (multi-line) label: the contact sheet's and the
    explorer's layout."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    cell_w = max(im.width for im, _ in cells)
    cell_h = max(im.height for im, _ in cells)
    label_h = 4 + 12 * max(label.count("\n") + 1 for _, label in cells)
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * (cell_h + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (im, label) in enumerate(cells):
        x, y = (i % columns) * cell_w, (i // columns) * (cell_h + label_h)
        draw.multiline_text((x + 4, y + 2), label, fill="black", font=font, spacing=2)
        sheet.paste(im, (x + (cell_w - im.width) // 2, y + label_h))
    return sheet


def pixel_digest(image: Image.Image) -> str:
    """A short fingerprint of an image's pixels (and size): the same picture however its file is named or
    encoded. A training checkpoint records its painting's, and the fast-style cache is keyed by it."""
    h = hashlib.sha256(f"{image.width}x{image.height}".encode())
    h.update(image.convert("RGB").tobytes())
    return h.hexdigest()[:16]
