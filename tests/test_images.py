"""Tests for dreamstyle.images: loading every kind of input, conversions, and atomic saving."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from dreamstyle import images
from dreamstyle.errors import RunError, UserError
from dreamstyle.images import (
    check_output_path,
    load_image,
    read_params,
    resize_long_side,
    save_image,
    to_image,
    to_tensor,
)


def user_error(fn, *args, match: str = "") -> str:
    """Call fn, require a UserError with a one-line message containing `match`; return the message."""
    with pytest.raises(UserError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip()
    assert match in msg, msg
    return msg


def close(pixel, expected, tol=2):
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected))


def write(tmp_path, name: str, img: Image.Image, **kwargs) -> str:
    path = tmp_path / name
    img.save(path, **kwargs)
    return str(path)


def png_bytes(size=(8, 6), color=(10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def noise_png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


# --- bad input ---------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    user_error(load_image, tmp_path / "nope.png", match="file not found")


def test_directory(tmp_path):
    user_error(load_image, tmp_path, match="folder")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes())
    path.chmod(0)
    try:
        user_error(load_image, path, match="permission denied")
    finally:
        path.chmod(0o644)


def test_permission_error_is_user_error(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes())

    def denied(fp, *a, **k):
        raise PermissionError(13, "Permission denied", str(fp))

    monkeypatch.setattr(images.Image, "open", denied)
    user_error(load_image, path, match="permission denied")


@pytest.mark.parametrize("content", [
    b"",                                     # empty file
    b"hello, this is not an image\n",       # text
    noise_png_bytes()[:5000],                # truncated PNG
    png_bytes()[:33] + bytes(range(64)),     # valid header, garbage data
    b"\x89PNG\r\n\x1a\n" + bytes(100),      # PNG signature only
])
def test_not_an_image_or_corrupt(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    user_error(load_image, path, match="cannot read")
    user_error(read_params, path, match="cannot read")


def test_zero_size_image(tmp_path, monkeypatch):
    path = tmp_path / "empty.png"
    path.write_bytes(png_bytes())
    monkeypatch.setattr(images.Image, "open", lambda fp, *a, **k: Image.new("RGB", (0, 5)))
    user_error(load_image, path, match="empty")


def test_zero_width_png_file(tmp_path):
    good = png_bytes()
    bad = good[:16] + (0).to_bytes(4, "big") + good[20:]  # width 0 in IHDR (CRC now wrong too)
    path = tmp_path / "zero.png"
    path.write_bytes(bad)
    user_error(load_image, path, match="cannot read")


@pytest.mark.parametrize("size", [(11, 10), (40, 40)])  # just over the limit (warning), over 2x (error)
def test_decompression_bomb_limit(tmp_path, monkeypatch, size):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = write(tmp_path, "big.png", Image.new("RGB", size))
    user_error(load_image, path, match="100 pixels")


def test_decompression_bomb_limit_allows_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert load_image(write(tmp_path, "ok.png", Image.new("RGB", (10, 10)))).size == (10, 10)


# --- accepted modes ----------------------------------------------------------------------------

def _gray16(value: int) -> Image.Image:
    return Image.fromarray(np.full((6, 8), value, dtype=np.uint16))


def _palette_with_transparency() -> Image.Image:
    img = Image.new("P", (8, 6), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 4, 6))
    img.info["transparency"] = 1
    return img


@pytest.mark.parametrize("name, make, at, expected", [
    ("l.png", lambda: Image.new("L", (8, 6), 77), (0, 0), (77, 77, 77)),
    ("one.png", lambda: Image.new("1", (8, 6), 1), (0, 0), (255, 255, 255)),
    ("i.tif", lambda: Image.new("I", (8, 6), 200), (0, 0), (200, 200, 200)),
    ("i16bit.tif", lambda: Image.new("I", (8, 6), 65535), (0, 0), (255, 255, 255)),
    ("g16.png", lambda: _gray16(32768), (0, 0), (128, 128, 128)),
    ("g16.tif", lambda: _gray16(1000), (0, 0), (4, 4, 4)),
    ("f01.tif", lambda: Image.new("F", (8, 6), 0.5), (0, 0), (128, 128, 128)),
    ("f255.tif", lambda: Image.new("F", (8, 6), 100.0), (0, 0), (100, 100, 100)),
    ("clear.png", lambda: Image.new("RGBA", (8, 6), (255, 0, 0, 0)), (0, 0), (255, 255, 255)),
    ("opaque.png", lambda: Image.new("RGBA", (8, 6), (255, 0, 0, 255)), (0, 0), (255, 0, 0)),
    ("half.png", lambda: Image.new("RGBA", (8, 6), (0, 0, 0, 128)), (0, 0), (127, 127, 127)),
    ("la.png", lambda: Image.new("LA", (8, 6), (0, 0)), (0, 0), (255, 255, 255)),
    ("p.png", _palette_with_transparency, (1, 1), (255, 255, 255)),
    ("p2.png", _palette_with_transparency, (6, 1), (255, 0, 0)),
    ("cmyk.tif", lambda: Image.new("CMYK", (8, 6), (255, 0, 0, 0)), (0, 0), (0, 255, 255)),
    ("cmyk.jpg", lambda: Image.new("CMYK", (8, 6), (255, 0, 0, 0)), (0, 0), (0, 255, 255)),
])
def test_accepted_modes(tmp_path, name, make, at, expected):
    path = write(tmp_path, name, make())
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (8, 6)
    assert close(img.getpixel(at), expected, tol=3), img.getpixel(at)


def test_16bit_png_is_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 8 * 6).astype(np.uint16).reshape(6, 8)
    path = write(tmp_path, "ramp.png", Image.fromarray(ramp))
    with Image.open(path) as raw:
        assert raw.mode.startswith("I;16")  # really a 16-bit file
    got = np.asarray(load_image(path))[..., 0].astype(int)
    assert np.abs(got - np.rint(ramp / 257)).max() <= 1
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) > 40


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = write(tmp_path, "photo.jpg", img, exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (20, 40)
    assert close(out.getpixel((10, 5)), (255, 0, 0), tol=20)  # left side is now on top
    assert close(out.getpixel((10, 35)), (0, 0, 255), tol=20)


def test_load_image_returns_loaded_copy(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(color=(1, 2, 3)))
    img = load_image(path)
    path.unlink()  # the file is no longer needed
    assert img.getpixel((0, 0)) == (1, 2, 3)


# --- resize and tensors ------------------------------------------------------------------------

@pytest.mark.parametrize("size_in, long_side, size_out", [
    ((40, 20), 16, (16, 8)), ((20, 40), 16, (8, 16)), ((1000, 1), 10, (10, 1)), ((30, 30), 64, (64, 64)),
])
def test_resize_long_side(size_in, long_side, size_out):
    assert resize_long_side(Image.new("RGB", size_in), long_side).size == size_out


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_resize_long_side_bad_size(bad):
    user_error(resize_long_side, Image.new("RGB", (4, 4)), bad, match="size")


def test_tensor_round_trip_is_exact():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    t = to_tensor(img)
    assert t.shape == (1, 3, 7, 9) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    assert np.array_equal(np.asarray(to_image(t)), arr)
    assert np.array_equal(np.asarray(to_image(t[0])), arr)
    assert np.array_equal(np.asarray(to_image(t.double())), arr)
    assert np.array_equal(np.asarray(to_image(t.half())), arr)


def test_to_image_clamps_and_rounds():
    t = torch.tensor([-1.0, 2.0, 127.6 / 255, float("nan")]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    img = to_image(t)
    assert img.mode == "RGB" and img.size == (4, 1)
    assert [img.getpixel((x, 0))[0] for x in range(4)] == [0, 255, 128, 0]


def test_to_image_rejects_bad_shape():
    with pytest.raises(ValueError):
        to_image(torch.zeros(2, 3, 4, 4))


# --- output paths and saving -------------------------------------------------------------------

def test_check_output_path_ok(tmp_path):
    assert check_output_path(str(tmp_path / "out.PNG")) == tmp_path / "out.PNG"


@pytest.mark.parametrize("name", ["out.gif", "out", "out.txt"])
def test_check_output_path_bad_extension(tmp_path, name):
    msg = user_error(check_output_path, tmp_path / name, match="extension")
    assert ".png" in msg and ".jpg" in msg and ".tiff" in msg


def test_check_output_path_missing_folder(tmp_path):
    user_error(check_output_path, tmp_path / "missing" / "out.png", match="does not exist; create it first")


def test_check_output_path_is_directory(tmp_path):
    (tmp_path / "dir.png").mkdir()
    user_error(check_output_path, tmp_path / "dir.png", match="folder")


PARAMS = {"style": "starry.jpg", "weights": [1.0, 0.5], "nested": {"seed": 42}, "text": "café ☕"}


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.jpeg", "out.webp", "out.tif"])
def test_save_and_read_params_round_trip(tmp_path, name):
    img = Image.new("RGB", (12, 8), (200, 100, 50))
    path = save_image(img, tmp_path / name, PARAMS)
    assert path == tmp_path / name
    assert read_params(path) == PARAMS
    assert close(load_image(path).getpixel((5, 5)), (200, 100, 50), tol=3)
    assert os.listdir(tmp_path) == [name]  # no temp file left behind


def test_png_params_in_text_chunk(tmp_path):
    path = save_image(Image.new("RGB", (4, 4)), tmp_path / "out.png", {"a": 1})
    with Image.open(path) as raw:
        assert raw.text["dreamstyle"] == '{"a": 1}'


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (5, 1), (37, 23)])
def test_png_writer_is_lossless_and_valid(tmp_path, size):
    """The hand-made PNG (Sub filter, run-length deflate) reads back bit-exactly, its CRCs checked."""
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path = save_image(Image.fromarray(pixels), tmp_path / "out.png", {"a": "ç"})
    with Image.open(path) as raw:
        raw.verify()  # every chunk's CRC and the end of the file
    with Image.open(path) as raw:
        assert raw.mode == "RGB" and raw.size == size
        assert np.array_equal(np.asarray(raw), pixels)
        assert json.loads(raw.text["dreamstyle"]) == {"a": "ç"}


def test_jpeg_quality_is_95(tmp_path):
    path = save_image(Image.new("RGB", (16, 16)), tmp_path / "out.jpg")
    # quality 95 scales the standard luminance table (max 121) to 10%: entries of at most 12
    with Image.open(path) as raw:
        assert max(raw.quantization[0]) <= 12


def test_read_params_missing(tmp_path):
    path = write(tmp_path, "plain.png", Image.new("RGB", (4, 4)))
    user_error(read_params, path, match="has no dreamstyle parameters")
    bmp = save_image(Image.new("RGB", (4, 4)), tmp_path / "out.bmp", {"a": 1})  # BMP cannot hold them
    user_error(read_params, bmp, match="has no dreamstyle parameters")
    user_error(read_params, tmp_path / "absent.png", match="file not found")


def test_save_overwrites_and_converts_mode(tmp_path):
    target = tmp_path / "out.jpg"
    save_image(Image.new("RGB", (4, 4), (0, 0, 0)), target)
    save_image(Image.new("RGBA", (6, 4), (255, 255, 255, 255)), target)
    assert load_image(target).size == (6, 4)
    assert os.listdir(tmp_path) == ["out.jpg"]


def test_save_checks_path_first(tmp_path):
    user_error(save_image, Image.new("RGB", (4, 4)), tmp_path / "no" / "out.png", match="does not exist")
    user_error(save_image, Image.new("RGB", (4, 4)), tmp_path / "out.gif", match="extension")


@pytest.mark.parametrize("exc, expected", [(OSError(28, "No space left on device"), RunError),
                                           (RuntimeError("boom"), RuntimeError)])
def test_failed_save_keeps_previous_file(tmp_path, monkeypatch, exc, expected):
    target = tmp_path / "out.png"
    save_image(Image.new("RGB", (4, 4), (9, 9, 9)), target, {"v": 1})
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise exc

    def broken_png(img, fp, texts):
        broken_save(img, fp)

    monkeypatch.setattr(Image.Image, "save", broken_save)
    monkeypatch.setattr(images, "write_png", broken_png)
    with pytest.raises(expected) as info:
        save_image(Image.new("RGB", (4, 4), (1, 1, 1)), target, {"v": 2})
    assert "\n" not in str(info.value)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]
