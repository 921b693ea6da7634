"""The ``dreamstyle`` command in separate processes: exit codes, one-line errors on stderr, files written.

Runs go through conftest's CLI runner: a fork server that executes ``dreamstyle`` as ``__main__`` in a fresh
child process per run (real exit status, real stderr), plus real ``python -m dreamstyle`` runs where
``real=True``. The module starts its runs in the background at once and each test waits for its own.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from skimage import data

from dreamstyle.backbones import SPECS
from dreamstyle.images import read_params

FAST = ["--iterations", "5", "--size", "64", "--quiet"]
BOMB_SIDE = 20000  # 400 Mpixels: over Pillow's decompression-bomb limit (about 89.5 Mpixels by default)


def small(array: np.ndarray, size: int = 64) -> Image.Image:
    img = Image.fromarray(array).convert("RGB")
    w, h = img.size
    return img.resize((round(w * size / max(w, h)), round(h * size / max(w, h))), Image.Resampling.LANCZOS)


def bomb_png(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid 1-bit grayscale PNG of side x side pixels: all black, so it compresses to about 50 KB."""
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    compressor = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the packed bits
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def make_inputs(folder: Path) -> SimpleNamespace:
    """Every kind of input file the tests use, in ``folder``."""
    cat, rocket = small(data.chelsea()), small(data.rocket())  # 64 x 43 each
    f = SimpleNamespace(content=folder / "content.png", style=folder / "style.png")
    cat.save(f.content)
    rocket.save(f.style)
    # bad inputs
    f.missing = folder / "missing.png"
    f.text_jpg = folder / "notes.jpg"
    f.text_jpg.write_text("this is not a JPEG\n")
    f.empty_png = folder / "empty.png"
    f.empty_png.write_bytes(b"")
    f.bomb = bomb_png(folder / "bomb.png")
    # unusual but valid inputs
    f.gray = folder / "gray.png"
    cat.convert("L").save(f.gray)
    f.rgba = folder / "rgba.png"
    rgba = cat.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(cat.size))
    rgba.save(f.rgba)
    f.cmyk = folder / "cmyk.jpg"
    cat.convert("CMYK").save(f.cmyk, "JPEG", quality=90)
    f.png16 = folder / "gray16.png"
    Image.fromarray(np.asarray(cat.convert("L"), dtype=np.uint16) * 257).save(f.png16)
    f.exif6 = folder / "rotated.jpg"  # stored landscape 96 x 64; orientation 6 means "rotate 90 CW to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    small(data.chelsea(), 96).crop((0, 0, 96, 64)).save(f.exif6, "JPEG", exif=exif, quality=90)
    return f


# Bad inputs: id -> (arguments, what stderr must mention). {x} is filled from the inputs; OUT is the output.
BAD = {
    "missing-content": (["{missing}", "{style}", "-o", "OUT"], ["missing.png", "not found"]),
    "missing-style": (["{content}", "{missing}", "-o", "OUT"], ["missing.png", "not found"]),
    "text-as-jpg": (["{text_jpg}", "{style}", "-o", "OUT"], ["notes.jpg", "not a valid image"]),
    "zero-byte-png": (["{content}", "{empty_png}", "-o", "OUT"], ["empty.png", "not a valid image"]),
    "decompression-bomb": (["{bomb}", "{style}", "-o", "OUT"], ["bomb.png", "decompression-bomb"]),
    "unknown-model": (["{content}", "{style}", "-o", "OUT", "--model", "vgg99"], ["vgg99", *SPECS]),
    "unknown-tap": (["{content}", "{style}", "-o", "OUT", "--style-layers", "stem", "blocks.99"],
                    ["blocks.99", "blocks.9", "dreamstyle layers efficientnet_lite0"]),
    "negative-style-weight": (["{content}", "{style}", "-o", "OUT", "--style-weight", "-1"], ["--style-weight"]),
    "negative-content-weight": (["{content}", "{style}", "-o", "OUT", "--content-weight", "-0.5"],
                                ["--content-weight"]),
    "size-zero": (["{content}", "{style}", "-o", "OUT", "--size", "0"], ["--size"]),
    "size-negative": (["{content}", "{style}", "-o", "OUT", "--size", "-5"], ["--size"]),
    "bad-extension": (["{content}", "{style}", "-o", "OUT.gif"], ["out.gif", "extension", ".png"]),
    "missing-output-folder": (["{content}", "{style}", "-o", "{outdir}/nope/out.png"], ["nope", "does not exist"]),
    "negative-lr": (["{content}", "{style}", "-o", "OUT", "--lr", "-1"], ["--lr"]),
}
XFAIL_BAD: dict[str, str] = {}  # case -> reason, for known bugs
SAME_IN_BOTH = ["missing-content", "size-negative"]  # also run with the real `python -m dreamstyle`
GOOD = {  # id -> (input attribute, expected output size)
    "grayscale": ("gray", (64, 43)),
    "rgba": ("rgba", (64, 43)),
    "cmyk-jpeg": ("cmyk", (64, 43)),
    "16-bit-png": ("png16", (64, 43)),
    "exif-rotated-jpeg": ("exif6", (43, 64)),  # upright it is portrait
}


def bad_argv(case: str, inputs: SimpleNamespace, outdir: Path) -> list[str]:
    """BAD[case]'s arguments with the input paths filled in and OUT pointing into ``outdir``."""
    values = {**vars(inputs), "outdir": outdir}
    return [str(outdir / "out.png") if a == "OUT" else str(outdir / "out.gif") if a == "OUT.gif"
            else a.format(**values) for a in BAD[case][0]]


@pytest.fixture(scope="module")
def runs(cli, tmp_path_factory):
    """Start every CLI run of this module in the background; tests wait for the ones they check."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "in").mkdir()
    inputs = make_inputs(folder / "in")
    started = {}
    # The real `python -m dreamstyle` runs first, so that they run alongside the fork-server ones.
    out = folder / "e2e" / "stylized.png"
    out.parent.mkdir()
    started["e2e"] = (out, cli.submit("stylize", inputs.content, inputs.style, "-o", out, *FAST, "--seed", "5",
                                      real=True))
    outdirs = {case: folder / "bad" / case for case in BAD}
    for case in SAME_IN_BOTH:  # these bad inputs also through the real `python -m dreamstyle`
        outdirs[case].mkdir(parents=True)
        started[f"real:{case}"] = (outdirs[case], cli.submit("stylize", *bad_argv(case, inputs, outdirs[case]),
                                                             *FAST, cwd=outdirs[case], real=True))
    started["models"] = (None, cli.submit("models"))
    started["show-params-plain"] = (None, cli.submit("--show-params", inputs.content))
    for case in BAD:
        outdirs[case].mkdir(parents=True, exist_ok=True)
        started[case] = (outdirs[case], cli.submit("stylize", *bad_argv(case, inputs, outdirs[case]), *FAST,
                                                   cwd=outdirs[case]))
    for case, (name, _) in GOOD.items():
        out = folder / "good" / case / "out.png"
        out.parent.mkdir(parents=True)
        source = getattr(inputs, name)
        started[case] = (out, cli.submit("stylize", source, source, "-o", out, *FAST))
    return SimpleNamespace(inputs=inputs, started=started)


def test_bomb_png_is_a_valid_huge_image(runs):
    path = runs.inputs.bomb
    assert path.stat().st_size < 1_000_000
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # read the header only, without Pillow's guard
    try:
        with Image.open(path) as im:
            assert im.size == (BOMB_SIDE, BOMB_SIDE) and im.format == "PNG"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert limit is not None and BOMB_SIDE ** 2 > 2 * limit


@pytest.mark.slow  # it waits for the real `python -m dreamstyle` runs started with the module
def test_end_to_end(cli, runs):
    out, future = runs.started["e2e"]
    proc = future.result()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr.lower()
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (64, 43)
        assert np.asarray(img).std() > 5  # a real picture, not a flat fill
    shown = cli.run("--show-params", out, real=True)
    assert shown.returncode == 0, shown.stderr
    params = json.loads(shown.stdout)
    assert params == read_params(out)
    assert params["command"] == "stylize" and params["iterations"] == 5 and params["size"] == 64
    assert params["seed"] == 5 and params["model"] == "efficientnet_lite0"


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=XFAIL_BAD[c]))
                                  if c in XFAIL_BAD else c for c in BAD])
def test_bad_input(cli, runs, case):
    outdir, future = runs.started[case]
    proc = future.result()
    line = cli.one_line_error(proc)
    assert proc.returncode == 2, (proc.returncode, line)
    assert line.startswith("dreamstyle"), line
    for needle in BAD[case][1]:
        assert needle in line, (needle, line)
    assert list(outdir.rglob("*")) == [], "no output (and no temp file) may be written"


@pytest.mark.parametrize("case", SAME_IN_BOTH)
def test_real_command_gives_the_same_error(cli, runs, case):
    """The fork-server runs match the real `python -m dreamstyle`: same exit code, same stderr."""
    outdir, future = runs.started[f"real:{case}"]
    real, forked = future.result(), runs.started[case][1].result()
    cli.one_line_error(real)
    assert (real.returncode, real.stderr, real.stdout) == (forked.returncode, forked.stderr, forked.stdout)
    assert list(outdir.rglob("*")) == []


@pytest.mark.parametrize("case", list(GOOD))
def test_accepted_input(runs, case):
    out, future = runs.started[case]
    proc = future.result()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with Image.open(out) as img:
        img.load()
        assert img.mode == "RGB" and img.size == GOOD[case][1]
    assert read_params(out)["content"] == str(getattr(runs.inputs, GOOD[case][0]))


def test_show_params_of_plain_image(cli, runs):
    proc = runs.started["show-params-plain"][1].result()
    line = cli.one_line_error(proc)
    assert proc.returncode == 2 and "no dreamstyle parameters" in line


def test_models_lists_every_backbone(runs):
    proc = runs.started["models"][1].result()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("networks")))
    end = lines.index(next(line for line in lines if line.startswith("bundled styles")))
    names = [line.split()[0] for line in lines[start + 1:end]]
    assert names == list(SPECS)
    assert "(default)" in next(line for line in lines if line.strip().startswith("efficientnet_lite0"))
    from dreamstyle.fastnet import bundled_styles

    cached = lines.index(next(line for line in lines if line.startswith("fast styles of your paintings")))
    assert [line.strip() for line in lines[end + 1:cached]] == (list(bundled_styles()) or ["(none installed)"])
