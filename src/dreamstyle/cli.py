"""The ``dreamstyle`` command: subcommands map onto the Python API; errors become one-line messages."""

from __future__ import annotations

import argparse
import json
import sys
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
    return parser


def _stylize_kwargs(args: argparse.Namespace) -> dict:
    from .backbones import DEFAULT_BACKBONE

    return dict(model=args.model or DEFAULT_BACKBONE, weights=args.weights, size=args.size,
                style_blend=args.style_weights, content_weight=args.content_weight,
                style_weight=args.style_weight, tv_weight=args.tv_weight, style_layers=args.style_layers,
                content_layers=args.content_layers, style_loss=args.style_loss, smooth=args.smooth,
                pooling=args.pooling, preserve_color=args.preserve_color, masks=args.masks,
                optimizer=args.optimizer, iterations=args.iterations, lr=args.lr, ema=args.ema, init=args.init,
                seed=args.seed, pyramid=args.pyramid == "on", style_scale=args.style_scale, device=args.device,
                precision=args.precision)


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


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import DreamstyleError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.show_params:
            return _show_params(args.show_params)
        commands = {"stylize": _cmd_stylize, "sheet": _cmd_sheet, "layers": _cmd_layers, "models": _cmd_models}
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
