"""Training a feed-forward style network (Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses").

The loss network is any dreamstyle backbone, with the same objectives and per-network defaults as
stylize: the content targets are re-bound to each batch of photos, the style targets are the
painting's statistics, taken once. Random square crops with flips from a folder of photos feed it.
Checkpoints (the model file itself, with the optimizer's state) are written every N steps, on
Ctrl-C and at the end, so a run can be resumed and a stopped run loses nothing.

Under ``torchrun --nproc_per_node N -m dreamstyle train ...`` (WORLD_SIZE > 1) the run joins torchrun's process
group (gloo on CPU, NCCL on CUDA, one GPU per process) and trains with DistributedDataParallel: each rank
draws its own ``batch_size`` crops (its generator seeded by the seed, its rank and the step it starts at),
the gradients are averaged, and rank 0 alone writes checkpoints and previews. ``resume`` continues such a
run, also on another number of processes (the crops then differ from the uninterrupted run's).
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..backbones import EDGE_PAD, get_spec, min_side
from ..errors import SettingError, UserError
from ..events import Run, guarded
from ..fastnet.modelfile import StyleModel, load_model, resolve_model, save_model
from ..fastnet.network import TransformerNet
from ..images import (
    IMAGE_SUFFIXES,
    as_image,
    check_output_folder,
    header,
    image_files,
    pixel_digest,
    refuse_output_over_inputs,
    resized_tensor,
    save_image,
    to_image,
    to_tensor,
)
from ..objectives import ContentLoss, Objective, PaletteLoss, StyleLoss, TVLoss, loss_defaults
from ..optimize.loop import descend
from ..optimize.memory import (
    BASE_BYTES,
    BYTES_PER_ACTIVATION,
    FORWARD_BYTES_PER_ACTIVATION,
    PROBE,
    activation_elements,
    require,
)
from ..settings import FINE_TUNE_STEPS, TRAIN_STEPS, TrainSettings, as_params
from .session import Session, check_weights_file

# A network trained from scratch has no photo to start from, as stylize's optimization does: with
# stylize's content weight it learns the painting and forgets the photo (the cat of the preview is
# gone after 150 steps). At 30x the cat's eyes come back early but fade as training goes on (after
# 1500 steps the astronaut was lost in the swirls); at 500x the astronaut, the flag and the rocket stay
# recognizable under the painting's strokes and palette (docs/train_bundled.py). So training weighs
# the content 500x.
CONTENT_BOOST = 500.0


class PhotoFolder:
    """Every image file under a folder; random square crops with flips. Unreadable files are skipped
    (and counted) the first time they are met."""

    def __init__(self, folder: str | os.PathLike, seed: int = 0) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise SettingError("data", f"'{folder}' is not a folder; give a folder of training photos")
        self.files = image_files(root, recursive=True)
        if not self.files:
            raise SettingError("data", f"'{folder}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); give a "
                               "folder of photos, such as COCO's train2014")
        self.bad: set[Path] = set()
        self.readable = list(self.files)  # the files not yet found unreadable, in order
        self.rng = random.Random(seed)

    def skip(self, paths: Iterable[Path]) -> None:
        """Count these files as unreadable and draw no more crops from them."""
        self.bad.update(paths)
        self.readable = [p for p in self.files if p not in self.bad]

    def _open(self, path: Path) -> Image.Image | None:
        try:
            with Image.open(path) as im:
                im.draft("RGB", (512, 512))  # JPEGs decode at a reduced size: much faster, plenty for crops
                return im.convert("RGB")
        except Exception:  # noqa: BLE001 - any unreadable file is skipped, whatever the reason
            self.skip([path])
            return None

    def crop(self, size: int) -> torch.Tensor:
        """One random ``size`` x ``size`` crop (3, S, S) of a random readable photo, flipped half the time."""
        while True:
            if not self.readable:
                raise UserError(f"none of the {len(self.files)} image files under the data folder could be read; "
                                "give a folder of JPEG or PNG photos")
            img = self._open(self.rng.choice(self.readable))
            if img is not None:
                break
        w, h = img.size
        scale = size / min(w, h) * self.rng.uniform(1.0, 1.5)  # a little zoom variety, never below the crop
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        left, top = self.rng.randint(0, img.width - size), self.rng.randint(0, img.height - size)
        img = img.crop((left, top, left + size, top + size))
        if self.rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(img)[0]

    def batch(self, n: int, size: int) -> torch.Tensor:
        return torch.stack([self.crop(size) for _ in range(n)])


@dataclass
class _Plan:
    """A checked training run: where it writes, its data, the painting, the losses and the taps."""

    out: Path
    init_file: Path | None
    preview_out: Path
    preview: Image.Image | None
    data: PhotoFolder
    painting: Image.Image
    painting_name: str
    digest: str
    weights: dict[str, float]
    style_loss: str
    style_size: int
    style_taps: dict[str, float]
    content_taps: dict[str, float]
    rank: int = 0  # under torchrun: this process's rank and the number of processes
    world: int = 1


def train(style: str | os.PathLike | Image.Image, s: TrainSettings, output: str | os.PathLike,
          events: Run) -> StyleModel:
    """Train (or fine-tune, or resume) a style network; the model file at ``output`` is the checkpoint. Under
    torchrun, one rank of a distributed run (see the module's notes)."""
    plan = _plan(style, s, output)  # 1. every check, before any work
    owned = _join_process_group(plan, s)
    try:
        return _train(plan, s, events)
    finally:
        if owned:
            torch.distributed.destroy_process_group()


def _train(plan: _Plan, s: TrainSettings, events: Run) -> StyleModel:
    torch.manual_seed(s.seed)
    net, train_state = _network(plan, s)  # 2. the network: resumed, fine-tuned from a trained one, or new
    s = dataclasses.replace(s, max_steps=_max_steps(s, train_state))
    session = Session.open(s, [*plan.style_taps, *plan.content_taps])  # 3. device, precision, backbone
    session.govern(events)
    device = session.device
    extractor = session.backbone.extractor([*plan.style_taps, *plan.content_taps], pad=EDGE_PAD)
    _check_memory(extractor, net, plan.painting, s, plan.style_size, device)
    net = net.to(device).train().requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)  # 4. the optimizer and the data, where they were
    if train_state.get("optimizer"):
        optimizer.load_state_dict(train_state["optimizer"])
    done = int(train_state.get("step", 0))
    if plan.world > 1 or int(train_state.get("world", 1)) > 1:  # each rank its own crops, also when resumed
        plan.data.rng.seed(f"{s.seed}:{plan.rank}:{done}")   # on another number of processes
    elif "data_rng" in train_state:
        plan.data.rng.setstate(_as_tuples(train_state["data_rng"]))
    plan.data.skip(Path(p) for p in train_state.get("unreadable", []))
    events.expect(s.max_steps or 0, done)
    painting = resized_tensor(plan.painting, plan.style_size, device)
    with torch.no_grad():  # 5. the objective: the painting's targets bound once
        style_feats = extractor(painting)
    content_term = ContentLoss(plan.content_taps, {t: style_feats[t] for t in plan.content_taps})  # re-bound
    terms = [(content_term, plan.weights["content_weight"]),  # per batch
             (StyleLoss(plan.style_taps, [style_feats], [1.0], plan.style_loss), plan.weights["style_weight"]),
             (TVLoss(), plan.weights["tv_weight"])]
    if s.palette_weight > 0:  # its targets sort the painting's colours: only when it is weighted
        terms.append((PaletteLoss(painting), s.palette_weight))
    objective = Objective(terms)
    meta = {"name": plan.out.stem, "style": plan.painting_name, "style_digest": plan.digest,
            **header("train", **as_params(s, **plan.weights, style_loss=plan.style_loss, style_size=plan.style_size,
                                          arch=net.arch, precision=session.precision))}
    _loop(plan, s, net, optimizer, extractor, content_term, objective, meta, train_state, done, events)  # 6.
    if plan.data.bad:
        import warnings

        warnings.warn(f"skipped {len(plan.data.bad)} unreadable image file(s) in the data folder", stacklevel=3)
    model = StyleModel(net.eval().requires_grad_(False), meta, plan.out)
    events.finish(None, plan.out, model.meta)
    return model


def _join_process_group(plan: _Plan, s: TrainSettings) -> bool:
    """Under torchrun (WORLD_SIZE > 1): join its process group, gloo on CPU or NCCL with this process's GPU
    (LOCAL_RANK); ``plan`` learns the rank and the world size. True if this call made the group."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return False
    dist = torch.distributed
    owned = not dist.is_initialized()
    if owned:
        cuda = s.device in ("auto", "cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    plan.rank, plan.world = dist.get_rank(), dist.get_world_size()
    return owned


def _max_steps(s: TrainSettings, train_state: dict[str, Any]) -> int:
    """The steps in all: as given; else a resumed run's own, a fine-tune's 400 or a new network's 2000."""
    if s.max_steps is not None:
        return s.max_steps
    if s.resume and isinstance(train_state.get("max_steps"), int):
        return int(train_state["max_steps"])
    return FINE_TUNE_STEPS if s.init is not None else TRAIN_STEPS


def _plan(style: str | os.PathLike | Image.Image, s: TrainSettings, output: str | os.PathLike) -> _Plan:
    """Check the output, the inputs and the settings, and load the painting and the data folder."""
    out = Path(output)
    if out.suffix.lower() != ".pt" or _is_dir(out):
        raise UserError(f"the model file '{output}' must be a file name ending in .pt")
    check_output_folder(out)
    if s.data is None:
        raise SettingError("data", "is needed: a folder of training photos")
    if s.resume and s.init is not None:
        raise SettingError("init", "cannot be combined with resume: a resumed run continues its own model")
    init_file = resolve_model(s.init) if s.init is not None else None
    preview_out = out.with_suffix(".preview.png")
    # before any work: neither the model nor its preview may be written over an input
    refuse_output_over_inputs(out, [style, init_file, s.preview])
    if s.preview is not None:
        refuse_output_over_inputs(preview_out, [style, s.preview])
    check_weights_file(s.weights)
    data = PhotoFolder(s.data, s.seed)
    painting, painting_name = as_image(style, "style")
    spec = get_spec(s.model)
    # stylize's defaults, unless the network keeps other ones for training (``defaults["train"]``: Lite0
    # trains on the taps and weights its bundled styles were trained with)
    knobs = {**loss_defaults(spec), **spec.defaults.get("train", {})}
    knobs["content_weight"] = knobs["content_weight"] * CONTENT_BOOST
    weights = {k: float(knobs[k] if getattr(s, k) is None else getattr(s, k))
               for k in ("content_weight", "style_weight", "tv_weight")}
    style_taps = dict(knobs.get("style_taps", spec.style_taps))
    content_taps = dict(knobs.get("content_taps", spec.content_taps))
    need = min_side(spec, [*style_taps, *content_taps])
    if s.size < need:
        raise SettingError("size", f"is {s.size} px, too small for {s.model}, whose taps need at least {need} px")
    preview = as_image(s.preview, "preview")[0] if s.preview is not None else None
    return _Plan(out, init_file, preview_out, preview, data, painting, painting_name, pixel_digest(painting),
                 weights, str(knobs["style_loss"] if s.style_loss is None else s.style_loss),
                 s.style_size or 2 * s.size, style_taps, content_taps)


def _network(plan: _Plan, s: TrainSettings) -> tuple[TransformerNet, dict[str, Any]]:
    """The network to train and its training state: resumed from the checkpoint, fine-tuned from a trained
    model, or new; its architecture must be the one asked for."""
    out, train_state = plan.out, {}
    if s.resume:
        if not _exists(out):
            raise SettingError("resume", f"found no checkpoint at '{out}'; leave out resume to start a new run")
        loaded = load_model(out)
        net, train_state = loaded.net, loaded.train
        if not train_state:
            raise SettingError("resume", f"'{out}' is a finished model with no training state; use "
                               "init to fine-tune it instead")
        _check_same_run(out, loaded.meta, plan.painting_name, plan.digest, s)
    elif plan.init_file is not None:
        net = load_model(plan.init_file).net
    else:
        net = TransformerNet(s.arch or "light")
    if s.arch is not None and s.arch != net.arch:
        source = f"the checkpoint '{out}'" if s.resume else f"the init model '{s.init}'"
        raise SettingError("arch", f"is {s.arch}, but {source} is a {net.arch} network; leave out {{arch}} (it "
                           f"follows the model), or give {{arch}} {net.arch}")
    return net, train_state


def _loop(plan: _Plan, s: TrainSettings, net: TransformerNet, optimizer: torch.optim.Optimizer,
          extractor: Any, content_term: ContentLoss, objective: Objective, meta: dict[str, Any],
          train_state: dict[str, Any], done: int, events: Run) -> None:
    """The training steps from ``done``, with a checkpoint every ``checkpoint_every`` steps and on Ctrl-C."""
    device, data, started = next(net.parameters()).device, plan.data, time.perf_counter()
    total = s.max_steps
    assert total is not None  # resolved by train()

    def checkpoint(step: int, final: bool = False) -> None:
        if plan.rank != 0:
            return  # rank 0 writes for all: the ranks' weights are the same after every step
        was_training = net.training
        net.eval()
        state = None if final else {"optimizer": optimizer.state_dict(), "step": step, "max_steps": total,
                                    # so that a resumed run draws exactly the crops the whole run would have
                                    "data_rng": data.rng.getstate(), "unreadable": sorted(map(str, data.bad)),
                                    "world": plan.world}
        meta.update(steps=step, seconds=round(time.perf_counter() - started, 1) + float(train_state.get("seconds", 0)))
        save_model(net, plan.out, meta, train=None if state is None else {**state, "seconds": meta["seconds"]})
        if plan.preview is not None:
            save_image(_stylized(net, plan.preview, device), plan.preview_out, meta)
        net.train(was_training)

    def keep() -> tuple[StyleModel, Path]:
        checkpoint(events.done)
        return StyleModel(net.eval(), meta, plan.out), plan.out

    seen, clock = 0, time.perf_counter()
    latest: dict[str, torch.Tensor] = {}  # the step's batch, for its preview
    forward = net if plan.world == 1 else torch.nn.parallel.DistributedDataParallel(net)  # averages gradients

    def evaluate() -> tuple[torch.Tensor, dict[str, float]]:
        latest["batch"] = batch = data.batch(s.batch_size, s.size).to(device)
        with torch.no_grad():
            content_term.bind(extractor(batch))
        result = forward(batch)
        return objective(extractor(result), result)

    def report(step: int, loss: float, parts: dict[str, float]) -> None:
        nonlocal seen
        seen += s.batch_size
        rate = seen / max(time.perf_counter() - clock, 1e-9)
        events.step(f"{net.arch}", loss, {**parts, "img/s": rate},
                    preview=_preview_fn(net, plan.preview, latest["batch"], device))
        if step % s.checkpoint_every == 0 and step < total:
            checkpoint(step)

    with guarded(events, keep):
        # the loop's NaN guard comes before the optimizer's update, so a checkpoint stays healthy
        descend(optimizer, evaluate, range(done + 1, total + 1), report)
        checkpoint(total, final=True)


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # a name too long: check_output_folder says so
        return False


def _exists(p: Path) -> bool:
    try:
        return p.exists() or p.is_symlink()
    except OSError:
        return True  # load_model then says what is wrong with the name


def _check_same_run(out: Path, meta: dict[str, Any], painting_name: str, digest: str, s: TrainSettings) -> None:
    """Refuse to resume another run's checkpoint (another painting, another loss network): continuing it would
    train that model toward this painting and write over it. Nothing is written before this check."""
    theirs = meta.get("style_digest")
    other = (theirs != digest) if isinstance(theirs, str) else \
        Path(str(meta.get("style", painting_name))).name != Path(painting_name).name
    if other:
        raise SettingError("resume", f"'{out}' is the checkpoint of another painting ('{meta.get('style')}'), not "
                           f"'{painting_name}'; give that painting to continue it, or another output for a new run")
    model = meta.get("model")
    if isinstance(model, str) and model != s.model:
        raise SettingError("resume", f"'{out}' was trained with the loss network {model}, not {s.model}; give "
                           f"{{model}} {model} to continue it, or another output for a new run")


def _check_memory(extractor: torch.nn.Module, net: TransformerNet, painting: Image.Image, s: TrainSettings,
                  style_size: int, device: torch.device) -> None:
    """Refuse up front, in one line, a batch that would not fit: the style network and the loss network, each
    forward and backward on ``batch_size`` crops of ``size`` px, and the painting's features at style_size."""
    probe = torch.rand(1, 3, PROBE, PROBE, device=device)
    loss_net = activation_elements(extractor, probe, 1, 1)  # elements per pixel
    per_pixel = BYTES_PER_ACTIVATION * (loss_net + activation_elements(net.to(device).eval(), probe, 1, 1))

    def need(side: int, crops: int, style_side: int) -> float:
        scale = style_side / max(painting.size)
        style_pixels = max(1, round(painting.width * scale)) * max(1, round(painting.height * scale))
        return BASE_BYTES + FORWARD_BYTES_PER_ACTIVATION * loss_net * style_pixels + per_pixel * side * side * crops

    def fix(have: float) -> tuple[str, str]:
        crops = [b for b in range(1, s.batch_size) if need(s.size, b, style_size) <= have]
        if crops:
            return "batch_size", f"use {{batch_size}} {max(crops)} or less, or a smaller {{size}}"
        sides = [side for side in range(64, s.size, 16) if need(side, 1, s.style_size or 2 * side) <= have]
        if sides:
            return "size", f"use {{size}} {max(sides)} or less with {{batch_size}} 1"
        if s.style_size is not None:
            return "style_size", "use a smaller {style_size}, or a lighter {model}"
        return "size", "use a lighter {model}"

    def what(setting: str) -> str:
        if setting == "batch_size":
            return f"of {s.batch_size} crops at {{size}} {s.size} with {s.model}"
        if setting == "style_size":
            return f"of {style_size} px with {s.model}"
        return f"of {s.size} px with {{batch_size}} {s.batch_size} and {s.model}"

    require(need(s.size, s.batch_size, style_size), device, "batch_size" if s.batch_size > 1 else "size", what, fix)


def _as_tuples(value: Any) -> Any:
    """random.Random's state with its lists turned back into tuples (as a file may give them back)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _stylized(net: TransformerNet, image: Image.Image, device: torch.device, size: int = 512) -> Image.Image:
    with torch.no_grad():
        return to_image(net(resized_tensor(image, min(size, max(image.size)), device)))


def _preview_fn(net: TransformerNet, preview: Image.Image | None, batch: torch.Tensor,
                device: torch.device) -> Callable[[], Image.Image]:
    """What a live preview shows: the preview image stylized, else the batch's first crop."""
    def show() -> Image.Image:
        was = net.training
        net.eval()
        try:
            if preview is not None:
                return _stylized(net, preview, device)
            with torch.no_grad():
                return to_image(net(batch[:1]))
        finally:
            net.train(was)
    return show
