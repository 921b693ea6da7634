"""Every option of every command, defined once (torch-free).

Each command's settings are a dataclass; each field carries its default and, in its metadata, an
:class:`Opt`: the help text, the kind of value, the allowed values or range, and how the command
line spells it. From these one definition come:

* the API's keyword defaults (``dreamstyle.stylize(..., size=512)``) and their checks,
* the command line's options (``frontends/cli.py`` builds argparse from them),
* the parameters embedded in every output (:func:`as_params`),
* ``sheet --sweep`` parsing (:func:`parse_text`), and the studio's form.

Checks raise :class:`~dreamstyle.errors.SettingError`, which names the setting (``style_weight``); the
CLI re-words it with its flag (``--style-weight``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .backbones.registry import DEFAULT_BACKBONE, POOLINGS, SPECS
from .color.options import PRESERVE_COLOR
from .errors import SettingError, UserError
from .objectives.options import DREAM_OBJECTIVES, SMOOTHING, STYLE_LOSSES
from .optimize.options import INITS, OPTIMIZERS
from .runtime.options import DEVICES, PRECISIONS

SEED_MAX = 2**64 - 1  # what torch's generators accept
MAX_SIDE = 16384  # pixels: far past what fits in memory; the memory check refuses most sizes before this


@dataclass(frozen=True)
class Opt:
    """How one setting is written, checked and explained."""

    help: str
    kind: str  # int, float, choice, bool, text, model, path, paths, floats, taps, targets, channels
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    maximum: float | None = None  # inclusive
    flag: str | None = None  # the CLI flag, if not --name-with-dashes
    metavar: str | None = None
    default_text: str | None = None  # what None means, for help texts ("per network")
    sweep: bool = True  # may be swept by `dreamstyle sheet`
    cli: bool = True  # False: API only
    onoff: bool = False  # a bool written on/off on the command line
    main: bool = False  # shown up front in the web page's form (the others fold away)

    @property
    def many(self) -> bool:
        return self.kind in ("paths", "floats", "taps", "targets")


def opt(default: Any, help: str, kind: str, **meta: Any) -> Any:
    return field(default=default, metadata={"opt": Opt(help=help, kind=kind, **meta)})


# --- the commands' settings ----------------------------------------------------------------------

@dataclass
class NetworkSettings:
    """What every network-running command shares."""

    model: str = opt(DEFAULT_BACKBONE, "backbone network (see `dreamstyle models`)", "model", main=True)
    weights: str | None = opt(None, "the network's weights from a .pth/.safetensors state dict, or 'random' "
                              "for untrained weights", "path", default_text="bundled / torchvision's", sweep=False)
    device: str = opt("auto", "where to run", "choice", choices=DEVICES)
    precision: str = opt("auto", "autocast precision of the network (losses stay fp32); auto is bf16 on CUDA, "
                         "else fp32", "choice", choices=PRECISIONS)
    seed: int = opt(0, "random seed; runs on CPU are deterministic for a given seed", "int", minimum=0,
                    maximum=SEED_MAX)


# Stylize's presets: starting values that any option given explicitly overrides (settings.make applies them).
PRESETS: dict[str, dict[str, Any]] = {
    "preview": {"size": 256, "iterations": 30, "pyramid": False},  # for choosing a painting: 1.4 s warm
    "default": {},
    "print": {"size": 2048, "iterations": 400},  # for a print: minutes, through the pyramid
}


@dataclass
class StylizeSettings(NetworkSettings):
    preset: str = opt("default", "starting values: preview (256 px, 30 steps, for choosing a painting), default, "
                      "or print (2048 px, 400 steps through the pyramid); options given explicitly win", "choice",
                      choices=tuple(PRESETS), main=True, sweep=False)
    size: int = opt(512, "long side of the output in pixels", "int", minimum=1, maximum=MAX_SIDE, main=True)
    style_blend: list[float] | None = opt(None, "blend weights, one per style image", "floats", flag="--style-weights",
                                          metavar="W", default_text="equal", sweep=False)
    content_weight: float | None = opt(None, "weight of the content loss", "float", minimum=0,
                                       default_text="per network", main=True)
    style_weight: float | None = opt(None, "weight of the style loss", "float", minimum=0, default_text="per network",
                                     main=True)
    tv_weight: float | None = opt(None, "weight of the total-variation (smoothness) loss", "float", minimum=0,
                                  default_text="per network")
    style_layers: list[str] | None = opt(None, "style taps with optional weights, e.g. relu1_1 relu2_1:0.5", "taps",
                                         metavar="TAP[:W]", default_text="per network", sweep=False)
    content_layers: list[str] | None = opt(None, "content taps with optional weights, e.g. relu4_2", "taps",
                                           metavar="TAP[:W]", default_text="per network", sweep=False)
    style_loss: str | None = opt(None, "style statistic: Gram matrices, mean+covariance (Wasserstein-2) or "
                                 "mean+std", "choice", choices=STYLE_LOSSES, default_text="per network")
    smooth: str | None = opt(None, "tame peaky deep taps (SWAG): softmax over positions, or down-scaling",
                             "choice", choices=SMOOTHING, default_text="per network")
    pooling: str = opt("max", "avg swaps max pooling for rescaled average pooling", "choice", choices=POOLINGS)
    preserve_color: str = opt("none", "keep the content's colours: transfer luminance only, or recolour the "
                              "style first", "choice", choices=PRESERVE_COLOR, main=True)
    masks: list[str] | None = opt(None, "one grayscale mask per style, over the content (white: that style goes "
                                  "here)", "paths", metavar="MASK", sweep=False)
    optimizer: str = opt("lbfgs", "the optimizer", "choice", choices=OPTIMIZERS)
    iterations: int | None = opt(None, "optimizer steps in all", "int", minimum=1, maximum=10**6,
                                 default_text="per network", main=True)
    lr: float | None = opt(None, "step size", "float", above=0, default_text="lbfgs 1.0, adam 0.02")
    ema: float = opt(0.0, "average the iterates with this decay, e.g. 0.9 (useful with adam)", "float", minimum=0,
                     maximum=0.999999, metavar="DECAY")
    init: str = opt("palette", "the starting image: palette (the content recoloured to the painting's palette), "
                    "content, noise, style or an image file", "text")
    pyramid: bool = opt(True, "coarse-to-fine from 256 px", "bool", onoff=True)
    style_scale: float = opt(1.0, "style features taken at S x the output size", "float", above=0, maximum=8)
    dream: list[str] | None = opt(None, "mix Deep Dream in: 2 or auto=2 (a tap style and content don't use), "
                                  "blocks.10:strongest:8=5, ...; W: 1 light, 3 clear, 10 takes over", "targets",
                                  metavar="TARGET=W")
    force: bool = opt(False, "allow dream targets on taps the style/content losses use", "bool", sweep=False)
    save_every: int = opt(0, "also save every N steps as OUT.NNNNN.png", "int", minimum=0, metavar="N",
                          sweep=False)
    edge_pad: bool = opt(True, "a mirrored margin so border pixels are styled like inner ones", "bool",
                         cli=False, sweep=False)


@dataclass
class DreamSettings(NetworkSettings):
    targets: list[str] | None = opt(None, "what to amplify: TAP, TAP:12,40, TAP:strongest:8 or TAP:weakest:8, each "
                                    "optionally =WEIGHT", "targets", flag="--target", metavar="TAP[:CH][=W]",
                                    default_text="the network's dream tap", main=True)
    objective: str = opt("l2", "mean square (l2) or mean activation", "choice", choices=DREAM_OBJECTIVES)
    size: int | None = opt(None, "long side of the result", "int", minimum=32, maximum=MAX_SIDE,
                           default_text="the image's", main=True)
    octaves: int = opt(4, "how many scales, smallest first", "int", minimum=1, maximum=12, main=True)
    octave_scale: float = opt(1.4, "size ratio between octaves", "float", above=1, maximum=4)
    iterations: int = opt(10, "steps per octave", "int", minimum=1, maximum=10**5)
    step_size: float = opt(0.01, "pixel change per step, of the 0-1 range", "float", above=0, maximum=1)
    jitter: int = opt(32, "random shift each step, in pixels", "int", minimum=0, maximum=MAX_SIDE)
    tile: int = opt(512, "larger images are dreamed in tiles of this size", "int", minimum=64, maximum=MAX_SIDE)
    laplacian: int = opt(4, "Laplacian-pyramid levels that smooth the gradient; 0 for none", "int", minimum=0,
                         maximum=8)
    guide: str | None = opt(None, "steer the features toward this image's", "path", metavar="IMAGE", sweep=False)
    preserve_color: str = opt("none", "keep the photo's colours", "choice", choices=PRESERVE_COLOR)


@dataclass
class ZoomSettings:
    """The endless zoom of ``dream --zoom``."""

    frames: int = opt(48, "write an endless-zoom animation of this many frames (-o must end in .gif or .mp4)",
                      "int", minimum=2, maximum=100000, flag="--zoom", metavar="FRAMES")
    zoom_scale: float = opt(1.05, "zoom per frame", "float", above=1, maximum=2)
    frame_iterations: int = opt(4, "dream steps per zoom frame", "int", minimum=1, maximum=10**4)
    fps: int = opt(12, "frames per second of the animation", "int", minimum=1, maximum=60)


@dataclass
class ExploreSettings(NetworkSettings):
    tap: str | None = opt(None, "the tap to explore (see `dreamstyle layers MODEL`)", "text", main=True)
    channels: list[int] | None = opt(None, "which channels", "channels", metavar="C,C,...",
                                     default_text="the first --count, or with --image the --count most active")
    count: int = opt(16, "how many channels (at most 64)", "int", minimum=1, main=True)
    image: str | None = opt(None, "show which channels respond to this image, and where", "path")
    size: int | None = opt(None, "cell size in pixels", "int", minimum=32, maximum=MAX_SIDE,
                           default_text="128; with --image 256")
    iterations: int = opt(96, "optimization steps per picture", "int", minimum=1, maximum=10**5)


ARCHITECTURES = ("small", "standard", "light")
# A new painting's fast style (apply --style): fine-tuned from a bundled style for this many steps
# (4 crops of 256 px each). The light network's step costs half the small one's (0.26 s against 0.53 s
# on an AMX Xeon), so 280 light steps take about the time 140 small ones did (4 minutes on a 2-core
# Zen 1 EPYC, measured for small only); 280 light steps took 77 s on an AMX Xeon (BENCHMARKS.md, issue 21).
FAST_STYLE_STEPS = 280
TRAIN_STEPS, FINE_TUNE_STEPS = 2000, 400  # train's steps from scratch, and from a trained model (--init)


@dataclass
class TrainSettings(NetworkSettings):
    """Training a feed-forward style network (Johnson et al. 2016); ``model`` is the loss network."""

    data: str | None = opt(None, "a folder of training photos, searched recursively (COCO's train2014 is the "
                           "classic choice; any few hundred varied photos work)", "path", metavar="DIR", sweep=False)
    arch: str | None = opt(None, "the style network: light (~0.06M parameters, no full-size convolution: the "
                           "fastest to apply), small (~0.1M) or standard (Johnson's, ~1.7M)", "choice",
                           choices=ARCHITECTURES,
                           default_text="light; with --init or --resume, that model's")
    size: int = opt(256, "training crops are SIZE x SIZE pixels", "int", minimum=64, maximum=2048)
    style_size: int | None = opt(None, "long side of the painting when its statistics are taken", "int",
                                 minimum=64, maximum=MAX_SIDE, default_text="2 x --size")
    batch_size: int = opt(4, "crops per step", "int", minimum=1, maximum=256)
    max_steps: int | None = opt(None, "training steps in all (a resumed run counts the steps already done)", "int",
                                minimum=1, maximum=10**7,
                                default_text=f"{TRAIN_STEPS}; with --init {FINE_TUNE_STEPS}; with --resume the "
                                             "run's own")
    lr: float = opt(1e-3, "Adam's learning rate", "float", above=0, maximum=1)
    content_weight: float | None = opt(None, "weight of the content loss", "float", minimum=0,
                                       default_text="500 x stylize's, per network")
    style_weight: float | None = opt(None, "weight of the style loss", "float", minimum=0,
                                     default_text="per network, as stylize")
    tv_weight: float | None = opt(None, "weight of the total-variation loss", "float", minimum=0,
                                  default_text="per network, as stylize")
    style_loss: str | None = opt(None, "style statistic", "choice", choices=STYLE_LOSSES,
                                 default_text="per network, as stylize")
    palette_weight: float = opt(0.0, "weight of the palette loss: the whole distribution of the painting's colours "
                                "(its darks and its brights, not only their mean); try 100-1000 for a painting of "
                                "few, far-apart colours", "float", minimum=0)
    checkpoint_every: int = opt(200, "save the model (and a preview) every N steps", "int", minimum=1,
                                metavar="N")
    preview: str | None = opt(None, "stylize this image at every checkpoint, as OUT.preview.png", "path",
                              metavar="IMAGE", sweep=False)
    init: str | None = opt(None, "start from this trained model (a bundled style name or a .pt): fine-tuning "
                           "takes minutes instead of hours", "text", metavar="MODEL", sweep=False)
    resume: bool = opt(False, "continue the run whose checkpoint is at -o", "bool", sweep=False)


@dataclass
class ApplySettings:
    """Applying a trained style network."""

    model: str = opt("starry_night", "a bundled style (see `dreamstyle models`), a .pt or an .onnx file", "text",
                     main=True)
    style_image: str | None = opt(None, "any painting instead of --model: the first time, a fast style is fine-tuned "
                                  "for it (minutes, with a progress bar) and cached; later runs reuse it at once",
                                  "path", flag="--style", metavar="PAINTING", sweep=False, main=True)
    style_steps: int = opt(FAST_STYLE_STEPS, "fine-tuning steps for a new --style painting", "int", minimum=1,
                           maximum=10**6, sweep=False)
    style_name: str | None = opt(None, "the painting's name in the list of fast styles", "text", cli=False,
                                 sweep=False, default_text="its file name")
    style_data: str | None = opt(None, "a folder of training photos for a new --style painting", "path",
                                 flag="--data", metavar="DIR", sweep=False,
                                 default_text="the photos shipped with dreamstyle")
    size: int | None = opt(None, "long side of the output", "int", minimum=16, maximum=MAX_SIDE,
                           default_text="the image's", main=True)
    strength: float = opt(1.0, "blend with the original: 0 keeps the photo, 1 is the full style", "float",
                          minimum=0, maximum=1, main=True)
    preserve_color: bool = opt(False, "keep the photo's colours (the style's luminance only)", "bool", main=True)
    device: str = opt("auto", "where to run (.pt models)", "choice", choices=DEVICES)


@dataclass
class ExportSettings:
    """Exporting a trained style network to ONNX."""

    int8: bool = opt(False, "also quantize the weights to 8 bits (onnxruntime's dynamic quantization)", "bool")
    fp16: bool = opt(False, "store the weights in fp16 (half the size)", "bool")
    check_size: int = opt(256, "size of the test image that compares onnxruntime's output with PyTorch's", "int",
                          minimum=16, maximum=4096, sweep=False)


# The video modes and the settings each takes beside VideoSettings.
VIDEO_MODES: dict[str, type] = {"apply": ApplySettings, "stylize": StylizeSettings, "dream": DreamSettings}


# Per video mode: the temporal weight and the steps of every frame after the first.
TEMPORAL_DEFAULTS = {"apply": 0.6, "stylize": 3000.0, "dream": 0.9}
FRAME_ITERATIONS = {"stylize": 30, "dream": 6}


@dataclass
class VideoSettings:
    """A video frame by frame, kept steady by optical flow. The mode's own settings come beside these:
    :class:`ApplySettings`, :class:`StylizeSettings` or :class:`DreamSettings` (see :data:`VIDEO_MODES`)."""

    mode: str = opt("apply", "what each frame gets: a trained style (fast), style transfer by optimization "
                    "(--style PAINTING, slow) or Deep Dream; each mode takes that command's options", "choice",
                    choices=tuple(VIDEO_MODES), main=True)
    style_images: list[str] | None = opt(None, "the painting(s) of --mode stylize, or the one painting of --mode "
                                         "apply (its fast style, fine-tuned the first time)", "paths",
                                         flag="--style", metavar="PAINTING", sweep=False)
    temporal_weight: float | None = opt(None, "how strongly each frame holds to the previous result, warped by "
                                        "the optical flow, where the flow is reliable; 0 for frame by frame. "
                                        "apply and dream: the share kept (below 1); stylize: the weight of "
                                        "the temporal loss", "float", minimum=0,
                                        default_text=", ".join(f"{k} {v:g}" for k, v in TEMPORAL_DEFAULTS.items()),
                                        main=True)
    frame_iterations: int | None = opt(None, "steps for each frame after the first, which starts from the "
                                       "previous result (stylize, dream)", "int", minimum=1, maximum=10**5,
                                       default_text=", ".join(f"{k} {v}" for k, v in FRAME_ITERATIONS.items()))
    start: float = opt(0.0, "first second to use", "float", minimum=0)
    end: float | None = opt(None, "second to stop at", "float", above=0, default_text="the end")
    every: int = opt(1, "use every Nth frame", "int", minimum=1, maximum=1000)


# The batch modes and the settings each job takes beside BatchSettings.
BATCH_MODES: dict[str, type] = {"apply": ApplySettings, "stylize": StylizeSettings, "dream": DreamSettings}


@dataclass
class ScaleSettings:
    """Where many jobs, or a video's chunks, run: local worker processes or Ray tasks, and how often a failed
    one is tried again."""

    workers: int | None = opt(None, "local worker processes, each running one job (a batch's photo, a video's "
                              "chunk) at a time on its share of the cores", "int", minimum=1, maximum=1024,
                              default_text="batch: the free cores; video: none, one process")
    ray: str | None = opt(None, "run as Ray tasks on the cluster at ADDRESS (host:port, ray://host:port, auto "
                          "for the running one, or local to start one on this machine)", "text",
                          metavar="ADDRESS", sweep=False)
    cpus_per_job: float = opt(1.0, "CPUs each Ray task asks for", "float", above=0, maximum=1024)
    gpus_per_job: float = opt(0.0, "GPUs each Ray task asks for (a share such as 0.25 packs tasks on one GPU)",
                              "float", minimum=0, maximum=64)
    retries: int = opt(2, "how many times a failed job is tried again before it is reported", "int", minimum=0,
                       maximum=100)


@dataclass
class BatchSettings(ScaleSettings):
    """Many jobs, each an ordinary stylize, apply or dream call, and where they run. The mode's own settings come
    beside these (:data:`BATCH_MODES`), for every job; a job list's columns override them per job."""

    mode: str = opt("apply", "what each job is: apply a trained style (fast), style transfer by optimization "
                    "(--style PAINTING...) or Deep Dream; each mode takes that command's options", "choice",
                    choices=tuple(BATCH_MODES), main=True)
    style_images: list[str] | None = opt(None, "the painting(s) of --mode stylize, or the one painting of --mode "
                                         "apply (its fast style), for every job", "paths", flag="--style",
                                         metavar="PAINTING", sweep=False)


# Each command's settings classes (what its options are made from).
COMMANDS: dict[str, tuple[type, ...]] = {"stylize": (StylizeSettings,), "sheet": (StylizeSettings,),
                                         "dream": (DreamSettings, ZoomSettings), "explore": (ExploreSettings,),
                                         "train": (TrainSettings,), "apply": (ApplySettings,),
                                         "export": (ExportSettings,),
                                         "video": (VideoSettings, ScaleSettings, *VIDEO_MODES.values()),
                                         "batch": (BatchSettings, *BATCH_MODES.values())}


# --- reading the definitions ---------------------------------------------------------------------

def options(cls: type) -> Iterator[tuple[dataclasses.Field, Opt]]:
    """The fields of a settings class with their :class:`Opt`, in order."""
    for f in dataclasses.fields(cls):
        yield f, f.metadata["opt"]


def flag_of(cls: type, name: str) -> str:
    """How the command line spells setting ``name``."""
    for f, o in options(cls):
        if f.name == name:
            return o.flag or "--" + name.replace("_", "-")
    return "--" + name.replace("_", "-")


def make(cls: type, values: Mapping[str, Any]) -> Any:
    """Settings of class ``cls`` from keyword values, checked; an unknown name is a TypeError (a coding error)."""
    names = {f.name for f, _ in options(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r} for {cls.__name__}; known: {', '.join(sorted(names))}")
    preset = values.get("preset")
    if "preset" in names and isinstance(preset, str) and preset in PRESETS:
        # what the caller gave explicitly wins; None means "the default", which the preset then sets
        values = {**PRESETS[preset], **{k: v for k, v in values.items() if v is not None}}
    settings = cls(**values)
    check(settings)
    return settings


def check(settings: Any) -> None:
    """Check every field of ``settings`` against its definition; the first problem is a SettingError."""
    for f, o in options(type(settings)):
        check_value(f.name, o, getattr(settings, f.name))


def check_value(name: str, o: Opt, value: Any) -> None:  # noqa: C901 (one branch per kind)
    if value is None and o.kind != "bool":
        return  # None means the default (per network, the image's size, ...)
    kind = o.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(name, f"must be a whole number, got {value!r}")
        _check_range(name, o, value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingError(name, f"must be a finite number, got {value!r}")
        _check_range(name, o, value)
    elif kind == "choice":
        if value not in o.choices:
            raise SettingError(name, f"must be one of: {', '.join(o.choices)}; got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise SettingError(name, f"must be True or False, got {value!r}")
    elif kind == "model":
        if value not in SPECS:
            raise UserError(f"unknown model '{value}'; choose one of: {', '.join(SPECS)}")
    elif kind in ("text", "path"):
        if not isinstance(value, str) and not hasattr(value, "__fspath__") and not _is_image(value):
            raise SettingError(name, f"must be text or a path, got {value!r}")
        if isinstance(value, str) and not value.strip():
            raise SettingError(name, "is empty; give a value or leave it out for the default")
    elif kind == "floats":
        items = _as_list(name, value)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise SettingError(name, f"values must be finite numbers >= 0, got {v!r}")
    elif kind in ("paths", "targets"):
        _as_list(name, value)
    elif kind == "taps":
        parse_taps(value, name)
    elif kind == "channels":
        items = _as_list(name, value)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, int):
                raise SettingError(name, f"must be channel numbers, got {v!r}")


def _is_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.")


def _as_list(name: str, value: Any) -> list:
    items = [value] if isinstance(value, (str, int, float)) or _is_image(value) or hasattr(value, "__fspath__") \
        else list(value)
    if not items or all(isinstance(v, str) and not v.strip(", ") for v in items):
        raise SettingError(name, "is empty; give at least one value, or leave it out for the default")
    return items


def _check_range(name: str, o: Opt, value: float) -> None:
    def show(bound: float) -> str:
        return str(int(bound)) if o.kind == "int" else f"{bound:g}"

    if o.minimum is not None and value < o.minimum:
        raise SettingError(name, f"must be >= {show(o.minimum)}, got {_short(value)}")
    if o.above is not None and value <= o.above:
        raise SettingError(name, f"must be > {show(o.above)}, got {_short(value)}")
    if o.maximum is not None and value > o.maximum:
        raise SettingError(name, f"must be <= {show(o.maximum)}, got {_short(value)}")


def _short(value: float) -> str:
    """A number for a one-line message: a whole number of 31 digits or more (a hostile `--size`, or a JSON
    integer from the studio) is shown as 1e+300, or "a huge number" past a float's range."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        try:
            return f"{float(value):.3g}"
        except OverflowError:
            return "a huge number"
    return repr(value)


def parse_taps(spec: Any, name: str = "style_layers") -> dict[str, float] | None:
    """``['relu1_1:0.5', 'relu2_1']``, ``'relu1_1:0.5,relu2_1'`` or a dict -> ``{tap: weight}``; None -> None."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        parts = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in str(s).split(",")]
        items = []
        for part in filter(None, (p.strip() for p in parts)):
            tap, colon, weight = part.partition(":")
            if not tap.strip():
                raise SettingError(name, f"entry '{part}' has no tap name; write TAP or TAP:WEIGHT, as in relu3_1:0.5")
            if colon and not weight.strip():
                raise SettingError(name, f"entry '{part}' has ':' but no weight; write {tap}:0.5, or just {tap}")
            try:
                items.append((tap.strip(), float(weight) if colon else 1.0))
            except ValueError:
                raise SettingError(name, f"entry '{part}': the weight after ':' must be a number, "
                                   "as in relu3_1:0.5") from None
    if not items:
        raise SettingError(name, "is empty; name at least one tap (see `dreamstyle layers MODEL`), or leave it out "
                           "for the network's default")
    for tap, weight in items:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise SettingError(name, f"weight of {tap} must be a finite number >= 0, got {weight}")
    return {tap: float(weight) for tap, weight in items}


_EXPECTED = {"int": "a whole number", "float": "a number", "floats": "a number", "bool": "on or off",
             "onoff": "on or off", "channels": "channel numbers >= 0 such as 0,5,12"}


def parse_kind(kind: str, text: str) -> Any:
    """One value of a setting's ``kind`` from text: the command line's arguments and ``sheet --sweep``'s items
    are all parsed here (a kind with no parsing stays text). ``onoff`` is the command line's strict on/off;
    ``bool`` also takes true/false, yes/no and 1/0. A ValueError says what was expected."""
    text = text.strip()
    try:
        if kind == "int":
            return int(text)
        if kind in ("float", "floats"):
            return float(text)
        if kind == "onoff":
            if text not in ("on", "off"):
                raise ValueError(text)
            return text == "on"
        if kind == "bool":
            if text.lower() in ("on", "true", "yes", "1"):
                return True
            if text.lower() in ("off", "false", "no", "0"):
                return False
            raise ValueError(text)
        if kind == "channels":
            channels = [int(c) for c in text.split(",") if c.strip()]
            if not channels or min(channels) < 0:
                raise ValueError(text)
            return channels
    except ValueError:
        raise ValueError(f"{_EXPECTED[kind]}, got '{text}'") from None
    return text


def parse_text(cls: type, name: str, text: str) -> Any:
    """One value of setting ``name`` from text, as ``sheet --sweep`` gives it (list kinds: one item)."""
    o = next((o for f, o in options(cls) if f.name == name), None)
    if o is None:
        raise UserError(f"unknown setting '{name}'")
    if o.many:
        return [text.strip()]
    try:
        return parse_kind(o.kind, text)
    except ValueError as exc:
        raise SettingError(name, f"must be {exc}") from None


def describe(cls: type) -> list[dict[str, Any]]:
    """The settings of ``cls`` as JSON-ready field descriptions, for a form (the web page builds its from these)."""
    out = []
    for f, o in options(cls):
        out.append({"name": f.name, "kind": o.kind, "default": _jsonable(f.default), "help": o.help,
                    "choices": list(o.choices), "minimum": o.minimum, "above": o.above, "maximum": o.maximum,
                    "flag": flag_of(cls, f.name), "default_text": o.default_text, "many": o.many, "main": o.main,
                    "onoff": o.onoff, "cli": o.cli})
    return out


def sweepable(cls: type) -> list[str]:
    return [f.name for f, o in options(cls) if o.sweep]


def as_params(settings: Any, **resolved: Any) -> dict[str, Any]:
    """The settings as JSON-ready parameters for an output file; ``resolved`` overrides (defaults filled in)."""
    out: dict[str, Any] = {}
    for f, _ in options(type(settings)):
        value = resolved.get(f.name, getattr(settings, f.name))
        out[f.name] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    if _is_image(value):
        return "<image>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def signature_of(cls: type, *leading: inspect.Parameter, **extra: Any) -> Callable[[Callable], Callable]:
    """Give an API function the keyword parameters of ``cls`` with their defaults, so ``help()`` shows them."""
    def decorate(func: Callable) -> Callable:
        params = list(leading)
        for f, _ in options(cls):
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                            annotation=f.type))
        for name, default in extra.items():
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return func
    return decorate


def split(values: Mapping[str, Any], *classes: type) -> list[dict[str, Any]]:
    """Split keyword values among settings classes by field name (for a call that takes several)."""
    out: list[dict[str, Any]] = [{} for _ in classes]
    for key, value in values.items():
        for i, cls in enumerate(classes):
            if key in {f.name for f, _ in options(cls)}:
                out[i][key] = value
                break
        else:
            names = sorted({f.name for cls in classes for f, _ in options(cls)})
            raise TypeError(f"unknown setting {key!r}; known: {', '.join(names)}")
    return out


__all__ = ["Opt", "NetworkSettings", "StylizeSettings", "DreamSettings", "ZoomSettings", "ExploreSettings",
           "TrainSettings", "ApplySettings", "ExportSettings", "VideoSettings", "VIDEO_MODES", "BatchSettings",
           "BATCH_MODES", "ScaleSettings",
           "COMMANDS", "options", "flag_of", "make", "check", "check_value", "parse_taps", "describe",
           "parse_text", "parse_kind", "sweepable", "as_params", "signature_of", "split",
           # the option lists, from their domains
           "DEVICES", "PRECISIONS", "STYLE_LOSSES", "SMOOTHING", "POOLINGS", "PRESERVE_COLOR", "OPTIMIZERS", "INITS",
           "DREAM_OBJECTIVES"]
