"""The ``dreamstyle`` command line's parser, generated from :mod:`dreamstyle.settings` (torch-free)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from ..settings import (
    BATCH_MODES,
    VIDEO_MODES,
    ApplySettings,
    BatchSettings,
    DreamSettings,
    ExploreSettings,
    ExportSettings,
    Opt,
    ScaleSettings,
    StylizeSettings,
    TrainSettings,
    VideoSettings,
    ZoomSettings,
    check_value,
    flag_of,
    options,
    parse_kind,
)
from ..version import __version__

_SUPPRESS = argparse.SUPPRESS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _kind(kind: str) -> Callable[[str], Any]:
    """An argparse type for a setting's kind: :func:`settings.parse_kind`, its complaint as argparse's."""
    def parse(text: str) -> Any:
        try:
            return parse_kind(kind, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected {exc}") from None
    return parse


_TYPES: dict[str, Callable[[str], Any]] = {kind: _kind(kind) for kind in ("int", "float", "floats", "channels")}
_int, _onoff = _kind("int"), _kind("onoff")


def _checked(name: str, o: Opt) -> Callable[[str], Any]:
    """Parse one value and check it against its setting at once, so a later repeat cannot hide a bad one."""
    parse = _TYPES.get(o.kind, str)

    def convert(text: str) -> Any:
        from ..errors import SettingError, UserError

        value = parse(text)
        try:
            check_value(name, o, [value] if o.kind == "floats" else value)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value
    return convert


def _help(o: Opt, default: Any) -> str:
    shown = o.default_text or ("on" if default is True else "off" if default is False and o.onoff else default)
    return o.help if shown is None or (default is False and not o.onoff) else f"{o.help} (default: {shown})"


def add_settings(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One option per setting of ``cls``. Options not given are left out of the namespace, so the API's
    defaults (the settings') apply: they exist once."""
    for f, o in options(cls):
        if not o.cli or f.name in skip:
            continue
        kwargs: dict[str, Any] = dict(dest=f.name, default=_SUPPRESS, help=_help(o, f.default))
        if o.metavar or o.kind in ("int", "float"):
            kwargs["metavar"] = o.metavar or {"int": "N", "float": "X"}[o.kind]
        if o.kind == "bool" and not o.onoff:
            kwargs["action"] = "store_true"
        elif o.kind == "bool":
            kwargs.update(type=_onoff, metavar="on|off")
        elif o.kind == "choice":
            kwargs["choices"] = list(o.choices)
        else:
            kwargs["type"] = _checked(f.name, o)
        if o.many:
            kwargs["nargs"] = "+"
        parser.add_argument(flag_of(cls, f.name), **kwargs)


def build_parser(video_mode: str = "apply") -> argparse.ArgumentParser:
    """The whole command line; ``video`` and ``batch`` take the options of ``video_mode`` (apply, stylize or
    dream: their --mode)."""
    parser = _Parser(prog="dreamstyle", description="Neural image stylization: style transfer, Deep Dream, "
                     "networks and their taps.")
    parser.add_argument("--version", action="version", version=f"dreamstyle {__version__}")
    parser.add_argument("--show-params", metavar="IMAGE", help="print the parameters stored in a dreamstyle output")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    _image_commands(sub)
    _network_commands(sub, video_mode)
    _batch_command(sub, video_mode)
    v = sub.add_parser("serve", help="the local web studio: stylize, apply, dream and explore in the browser",
                       description="Serve the studio page on this machine (127.0.0.1 unless --host).")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    v.add_argument("--port", type=_int, default=8000, help="port (default: 8000)")
    return parser


def _image_commands(sub: Any) -> None:
    """stylize, sheet, layers, models, dream, explore."""
    s = sub.add_parser("stylize", help="style transfer by optimization (Gatys et al.)",
                       description="Paint CONTENT in the style of one or more STYLE images.")
    s.add_argument("content")
    s.add_argument("styles", nargs="+", metavar="style")
    s.add_argument("-o", "--output", required=True, help="output image (.png keeps the parameters)")
    add_settings(s, StylizeSettings)
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    sh = sub.add_parser("sheet", help="a labelled contact sheet of a parameter sweep",
                        description="Stylize once per combination of the --sweep values and lay the results "
                                    "out in one labelled image, e.g. --sweep style-weight=1e2,1e3,1e4 "
                                    "--sweep model=efficientnet_lite0,squeezenet1_0")
    sh.add_argument("content")
    sh.add_argument("styles", nargs="+", metavar="style")
    sh.add_argument("-o", "--output", required=True, help="the sheet image")
    sh.add_argument("--sweep", action="append", required=True, metavar="NAME=V1,V2,...",
                    help="a stylize option and its values; give one or more")
    add_settings(sh, StylizeSettings, skip=("save_every",))
    sh.add_argument("--quiet", action="store_true", help="no progress bar")

    layers = sub.add_parser("layers", help="list a network's taps: name, channels, stride")
    layers.add_argument("model", nargs="?", default=None)
    layers.add_argument("--json", action="store_true", help="machine-readable output")

    m = sub.add_parser("models", help="list the networks, the bundled styles and your cached fast styles")
    m.add_argument("--clear", action="store_true", help="remove the cached fast styles (apply --style makes them)")

    d = sub.add_parser("dream", help="Deep Dream: amplify what a network sees in an image",
                       description="Amplify the patterns the chosen taps/channels respond to, over several octaves.")
    d.add_argument("photo", metavar="image")
    d.add_argument("-o", "--output", required=True, help="output image, or .gif/.mp4 with --zoom")
    add_settings(d, DreamSettings)
    add_settings(d, ZoomSettings)
    d.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("explore", help="see what a tap's channels respond to",
                       description="A labelled grid, one cell per channel: a picture optimized to excite it, "
                                   "or with --image, the image's most active channels and where they fire.")
    e.add_argument("model", nargs="?", default=_SUPPRESS, help="the network (default: efficientnet_lite0)")
    e.add_argument("-o", "--output", required=True, help="the grid image")
    add_settings(e, ExploreSettings, skip=("model",))
    e.add_argument("--quiet", action="store_true", help="no progress bar")


def _network_commands(sub: Any, video_mode: str) -> None:
    """train, apply, export and video: a positional input, an output, the settings."""
    for name, cls, help_, description, positional, output_help in (
            ("train", TrainSettings, "train a fast feed-forward network for one painting (Johnson et al.)",
             "Train a style network on a folder of photos; --init fine-tunes a bundled or trained model in "
             "minutes. -o is also the checkpoint (--resume continues it).", ("style", "painting", None),
             "the model file (.pt)"),
            ("apply", ApplySettings, "stylize photos with a trained network, in a blink",
             "Apply a bundled style (see `dreamstyle models`), a .pt model or an .onnx file to images or folders "
             "of images.", ("images", "image", "+"), "output image, or a folder for several"),
            ("export", ExportSettings, "export a trained network to ONNX for phones and browsers",
             "Write an ONNX file with a dynamic height and width and the model's metadata, and check "
             "onnxruntime's output against PyTorch's.", ("source", "model", None), None),
            ("video", VideoSettings, "a video through a trained style, style transfer or Deep Dream, without "
             "flicker", f"Each frame of a video (MP4, GIF or a folder of frames), tied to the last by optical flow. "
             f"--mode {video_mode} takes the options below; see `dreamstyle video --mode MODE --help` for the "
             "others'. Rerun the same command to continue an interrupted run.",
             ("source", "video", None), "the output: .mp4 (keeps the audio), .gif, or a new folder of frames")):
        p = sub.add_parser(name, help=help_, description=description)
        dest, metavar, nargs = positional
        p.add_argument(dest, metavar=metavar, nargs=nargs)
        if output_help:
            p.add_argument("-o", "--output", required=True, help=output_help)
        else:
            p.add_argument("--onnx", dest="output", required=True, metavar="OUT.onnx", help="the ONNX file to write")
        add_settings(p, cls)
        if cls is VideoSettings:  # the video's own --style is the painting of apply's fast style too
            add_settings(p, ScaleSettings)
            add_settings(p, VIDEO_MODES[video_mode], skip=("style_image",))
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def _batch_command(sub: Any, mode: str) -> None:
    """batch: a folder or list of jobs, an output folder, where they run, and the mode's settings for all jobs."""
    p = sub.add_parser("batch", help="many photos through stylize, apply or dream: a local pool or Ray, resumable",
                       description="Run one job per photo of a folder, or per row of a .csv/.json list (columns: "
                       "photo, style, output and any settings), on a local process pool or on Ray (--ray). "
                       f"--mode {mode} takes the options below, for every job; see `dreamstyle batch --mode MODE "
                       "--help` for the others'. Rerun the same command to skip the jobs already done.")
    p.add_argument("inputs", metavar="INPUTS", help="a folder of photos, or a .csv or .json list of jobs")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="the output folder (made if missing)")
    add_settings(p, BatchSettings)
    add_settings(p, BATCH_MODES[mode], skip=("style_image", "save_every"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
