"""The ``dreamstyle`` command: subcommands map onto the Python API; errors become one-line messages."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Sequence

from . import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options every optimizing command shares: network, device, precision, progress."""
    p.add_argument("--model", default=None, help="backbone network (see `dreamstyle models`); default efficientnet_lite0")
    p.add_argument("--weights", help="load the network's weights from this file (.pth/.safetensors), "
                                     "or 'random' for untrained weights")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision of the network (losses stay fp32); auto is bf16 on CUDA, "
                        "else fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_stylize_options(s: argparse.ArgumentParser) -> None:
    """The options of the style transfer itself, shared by ``stylize`` and ``sheet``."""
    s.add_argument("--size", type=_positive_int, default=512, help="long side of the output in pixels (512)")
    s.add_argument("--style-weights", type=_number, nargs="+", metavar="W", help="blend weights, one per style")
    s.add_argument("--content-weight", type=_number)
    s.add_argument("--style-weight", type=_number)
    s.add_argument("--tv-weight", type=_number)
    s.add_argument("--style-layers", nargs="+", metavar="TAP[:W]", help="style taps, e.g. relu1_1 relu2_1:0.5")
    s.add_argument("--content-layers", nargs="+", metavar="TAP[:W]", help="content taps, e.g. relu4_2")
    s.add_argument("--style-loss", default="gram", choices=["gram", "meancov", "meanstd"],
                   help="style statistic: Gram matrices, mean+covariance (Wasserstein-2) or mean+std")
    s.add_argument("--smooth", choices=["none", "softmax", "scale"],
                   help="tame peaky deep taps (SWAG): softmax over positions, or down-scaling (default per network)")
    s.add_argument("--pooling", default="max", choices=["max", "avg"], help="avg swaps max pooling for "
                   "rescaled average pooling")
    s.add_argument("--preserve-color", default="none", choices=["none", "luminance", "match"],
                   help="keep the content's colours: transfer luminance only, or recolour the style first")
    s.add_argument("--masks", nargs="+", metavar="MASK", help="one grayscale mask per style, over the content "
                   "(white: that style goes here)")
    s.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    s.add_argument("--iterations", type=_positive_int, help="optimizer steps in all (default per network)")
    s.add_argument("--lr", type=_number, help="step size (lbfgs 1.0, adam 0.02)")
    s.add_argument("--ema", type=_number, default=0.0, metavar="DECAY",
                   help="average the iterates with this decay, e.g. 0.9 (useful with adam)")
    s.add_argument("--init", default="content", help="content, noise, style or an image file")
    s.add_argument("--pyramid", default="on", choices=["on", "off"], help="coarse-to-fine from 256 px (on)")
    s.add_argument("--style-scale", type=_number, default=1.0, help="style features taken at S x the output size")
    s.add_argument("--dream", nargs="+", metavar="TARGET=W", help="mix Deep Dream in: 2 or auto=2 (a tap style "
                   "and content don't use), blocks.10:strongest:8=5, ...; W: 1 light, 3 clear, 10 takes over")
    s.add_argument("--force", action="store_true", help="allow --dream on taps the style/content losses use")


def _add_dream_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--target", nargs="+", metavar="TAP[:CH][=W]", help="what to amplify: TAP, TAP:12,40, "
                   "TAP:strongest:8 or TAP:weakest:8, each optionally =WEIGHT (default: the network's dream tap)")
    d.add_argument("--objective", default="l2", choices=["l2", "mean"], help="mean square (l2) or mean activation")
    d.add_argument("--size", type=_positive_int, help="long side of the result (default: the image's)")
    d.add_argument("--octaves", type=_positive_int, default=4, help="how many scales, smallest first (4)")
    d.add_argument("--octave-scale", type=_number, default=1.4, help="size ratio between octaves (1.4)")
    d.add_argument("--iterations", type=_positive_int, default=10, help="steps per octave (10)")
    d.add_argument("--step-size", type=_number, default=0.01, help="pixel change per step, of the 0-1 range (0.01)")
    d.add_argument("--jitter", type=int, default=32, help="random shift each step, in pixels (32)")
    d.add_argument("--tile", type=_positive_int, default=512, help="larger images are dreamed in tiles of this size")
    d.add_argument("--laplacian", type=int, default=4, help="Laplacian-pyramid levels that smooth the gradient; "
                   "0 for none (4)")
    d.add_argument("--guide", metavar="IMAGE", help="steer the features toward this image's")
    d.add_argument("--preserve-color", default="none", choices=["none", "luminance", "match"],
                   help="keep the photo's colours")
    d.add_argument("--zoom", type=_positive_int, metavar="FRAMES", help="write an endless-zoom animation of this "
                   "many frames (-o must end in .gif or .mp4)")
    d.add_argument("--zoom-scale", type=_number, default=1.05, help="zoom per frame (1.05)")
    d.add_argument("--frame-iterations", type=_positive_int, default=4, help="dream steps per zoom frame (4)")
    d.add_argument("--fps", type=_positive_int, default=12, help="frames per second of the animation (12)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dreamstyle", description="Neural image stylization: style transfer, networks, taps.")
    parser.add_argument("--version", action="version", version=f"dreamstyle {__version__}")
    parser.add_argument("--show-params", metavar="IMAGE", help="print the parameters stored in a dreamstyle output")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("stylize", help="style transfer by optimization (Gatys et al.)",
                       description="Paint CONTENT in the style of one or more STYLE images.")
    s.add_argument("content")
    s.add_argument("styles", nargs="+", metavar="style")
    s.add_argument("-o", "--output", required=True, help="output image (.png keeps the parameters)")
    _add_stylize_options(s)
    s.add_argument("--save-every", type=int, default=0, metavar="N", help="also save every N steps as OUT.NNNNN.png")
    _add_run_options(s)

    sh = sub.add_parser("sheet", help="a labelled contact sheet of a parameter sweep",
                        description="Stylize once per combination of the --sweep values and lay the results "
                                    "out in one labelled image, e.g. --sweep style-weight=1e2,1e3,1e4 "
                                    "--sweep model=efficientnet_lite0,squeezenet1_0")
    sh.add_argument("content")
    sh.add_argument("styles", nargs="+", metavar="style")
    sh.add_argument("-o", "--output", required=True, help="the sheet image")
    sh.add_argument("--sweep", action="append", required=True, metavar="NAME=V1,V2,...",
                    help="a stylize option and its values; give one or more")
    _add_stylize_options(sh)
    _add_run_options(sh)

    layers = sub.add_parser("layers", help="list a network's taps: name, channels, stride")
    layers.add_argument("model", nargs="?", default=None)
    layers.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("models", help="list the available networks")

    d = sub.add_parser("dream", help="Deep Dream: amplify what a network sees in an image",
                       description="Amplify the patterns the chosen taps/channels respond to, over several octaves.")
    d.add_argument("image")
    d.add_argument("-o", "--output", required=True, help="output image, or .gif/.mp4 with --zoom")
    _add_dream_options(d)
    _add_run_options(d)

    e = sub.add_parser("explore", help="see what a tap's channels respond to",
                       description="A labelled grid, one cell per channel: a picture optimized to excite it, "
                                   "or with --image, the image's most active channels and where they fire.")
    e.add_argument("model", nargs="?", default=None)
    e.add_argument("--tap", required=True, help="the tap to explore (see `dreamstyle layers MODEL`)")
    e.add_argument("-o", "--output", required=True, help="the grid image")
    e.add_argument("--channels", type=_channels, metavar="C,C,...", help="which channels (default: the first "
                   "--count, or with --image the --count most active)")
    e.add_argument("--count", type=_positive_int, default=16, help="how many channels (16)")
    e.add_argument("--image", help="show which channels respond to this image, and where")
    e.add_argument("--size", type=_positive_int, help="cell size in pixels (128; with --image 256)")
    e.add_argument("--iterations", type=_positive_int, default=96, help="optimization steps per picture (96)")
    e.add_argument("--weights", help="load the network's weights from this file, or 'random'")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _channels(text: str) -> list[int]:
    try:
        channels = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected channel numbers such as 0,5,12, got '{text}'") from None
    if not channels or min(channels) < 0:
        raise argparse.ArgumentTypeError(f"expected channel numbers >= 0 such as 0,5,12, got '{text}'")
    return channels


def _stylize_kwargs(args: argparse.Namespace) -> dict:
    from .backbones import DEFAULT_BACKBONE

    return dict(model=args.model or DEFAULT_BACKBONE, weights=args.weights, size=args.size,
                style_blend=args.style_weights, content_weight=args.content_weight,
                style_weight=args.style_weight, tv_weight=args.tv_weight, style_layers=args.style_layers,
                content_layers=args.content_layers, style_loss=args.style_loss, smooth=args.smooth,
                pooling=args.pooling, preserve_color=args.preserve_color, masks=args.masks,
                optimizer=args.optimizer, iterations=args.iterations, lr=args.lr, ema=args.ema, init=args.init,
                seed=args.seed, pyramid=args.pyramid == "on", style_scale=args.style_scale, device=args.device,
                precision=args.precision, dream=args.dream, force=args.force)


def _cmd_stylize(args: argparse.Namespace) -> int:
    from .api import stylize

    stylize(args.content, args.styles, output=args.output, save_every=args.save_every, progress=not args.quiet,
            **_stylize_kwargs(args))
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_sheet(args: argparse.Namespace) -> int:
    from .sheet import make_sheet

    make_sheet(args.content, args.styles, args.sweep, args.output, progress=not args.quiet, **_stylize_kwargs(args))
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_dream(args: argparse.Namespace) -> int:
    from .dream import dream, dream_zoom

    kwargs = dict(model=args.model, weights=args.weights, targets=args.target, objective=args.objective,
                  size=args.size, octaves=args.octaves, octave_scale=args.octave_scale, iterations=args.iterations,
                  step_size=args.step_size, jitter=args.jitter, tile=args.tile, laplacian=args.laplacian,
                  guide=args.guide, preserve_color=args.preserve_color, seed=args.seed, device=args.device,
                  precision=args.precision, progress=not args.quiet)
    if args.zoom:
        dream_zoom(args.image, args.output, frames=args.zoom, zoom_scale=args.zoom_scale,
                   frame_iterations=args.frame_iterations, fps=args.fps, **kwargs)
    else:
        dream(args.image, output=args.output, **kwargs)
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from .explore import explore

    explore(args.model, args.tap, output=args.output, channels=args.channels, count=args.count, image=args.image,
            size=args.size, iterations=args.iterations, weights=args.weights, device=args.device, seed=args.seed,
            progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from .backbones import DEFAULT_BACKBONE, get_spec, list_taps

    spec = get_spec(args.model or DEFAULT_BACKBONE)
    rows = []
    for tap in list_taps(spec):
        role = [r for r, taps in (("style", spec.style_taps), ("content", spec.content_taps)) if tap.name in taps]
        rows.append({"name": tap.name, "channels": tap.channels, "stride": tap.stride, "default": role})
    if args.json:
        print(json.dumps({"model": spec.name, "taps": rows}, indent=1))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            note = f"  default {'+'.join(r['default'])}" if r["default"] else ""
            print(f"{r['name']:<{width}}  {r['channels']:>5}  {r['stride']:>4}{note}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .backbones import DEFAULT_BACKBONE, SPECS

    for name, spec in SPECS.items():
        mark = " (default)" if name == DEFAULT_BACKBONE else ""
        print(f"{name:<20} {spec.description}{mark}")
    return 0


def _show_params(path: str) -> int:
    from .images import read_params

    print(json.dumps(read_params(path), indent=2))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"dreamstyle: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import DreamstyleError

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        if args.show_params:
            return _show_params(args.show_params)
        commands = {"stylize": _cmd_stylize, "sheet": _cmd_sheet, "layers": _cmd_layers, "models": _cmd_models,
                    "dream": _cmd_dream, "explore": _cmd_explore}
        if args.command is None:
            parser.print_help()
            return 2
        return commands[args.command](args)
    except DreamstyleError as exc:
        print(f"dreamstyle: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        from .api import Interrupted

        if isinstance(exc, Interrupted) and exc.path is not None:
            print(f"dreamstyle: interrupted at step {exc.step} of {exc.total}; the best image so far is "
                  f"saved in {exc.path}", file=sys.stderr)
        else:
            print("dreamstyle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dreamstyle layers | head`
        sys.stderr.close()
        return 0
    except MemoryError:
        print("dreamstyle: error: out of memory; use a smaller --size or a lighter --model", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
