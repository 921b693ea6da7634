"""Applying a trained style network to photos: one forward pass each.

A model is a bundled style name, a ``.pt`` model file (runs with torch) or an ``.onnx`` file (runs
with onnxruntime alone: this module imports torch only for ``.pt`` models).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..color.options import RGB_TO_YIQ
from ..errors import RunError, UserError
from ..events import Run, guarded
from ..fastnet.styles import bundled_onnx, find_bundled
from ..images import (
    array_from_image,
    as_image,
    check_input_file,
    check_output_folder,
    check_output_path,
    header,
    image_files,
    image_from_array,
    long_side_size,
    refuse_output_over_inputs,
    save_image,
    tensor_from_array,
)
from ..settings import ApplySettings, as_params

Styler = Callable[[np.ndarray], np.ndarray]  # (H, W, 3) float32 in [0, 1] -> the same
_YIQ = np.array(RGB_TO_YIQ, dtype=np.float32)  # RGB -> luminance and chroma, for keeping the photo's colours
# The style networks' first layer pads 4 pixels by reflection, which needs a side of at least 5: smaller
# photos (1 x 1, 10000 x 1) are padded to this by repeating their edge pixels, and cropped back.
MIN_SIDE = 8


def load_styler(model: str | os.PathLike, device: str = "auto") -> tuple[Styler, dict[str, Any]]:
    """The model as a function on arrays, and its metadata. A bundled style runs through its ONNX copy
    when onnxruntime is installed (faster on a CPU, and no torch needed), else through torch."""
    text = str(model)
    if device in ("auto", "cpu") and find_bundled(text) is not None and bundled_onnx(text) is not None \
            and importlib.util.find_spec("onnxruntime") is not None:
        text = str(bundled_onnx(text))
    if text.lower().endswith(".onnx"):
        try:
            exists = Path(text).exists() or Path(text).is_symlink()
        except OSError:  # a name too long: check_input_file says so
            exists = True
        if not exists:
            raise UserError(f"model file '{text}' does not exist; give an .onnx file made by `dreamstyle export`")
        check_input_file(text, "an .onnx model file")
        from ..fastnet.onnxrun import OnnxStyle

        onnx_style = OnnxStyle(text)
        return onnx_style, {**onnx_style.meta, "name": onnx_style.name}
    import torch

    from ..fastnet.modelfile import load_model
    from ..runtime import resolve_device

    dev = resolve_device(device)
    loaded = load_model(model, dev)

    def run(array: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = tensor_from_array(array, dev)
            return loaded.net(x)[0].float().cpu().numpy().transpose(1, 2, 0)
    return run, {**loaded.meta, "name": loaded.name}


def stylize_array(styler: Styler, photo: np.ndarray, strength: float = 1.0, preserve_color: bool = False) -> np.ndarray:
    """The style network on one photo (H, W, 3 in [0, 1]), blended and recoloured as asked. A photo thinner
    than MIN_SIDE pixels is run with its edge pixels repeated, and cropped back."""
    h, w = photo.shape[:2]
    if min(h, w) < MIN_SIDE:
        padded = np.pad(photo, ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)), mode="edge")
        raw = styler(padded)[:h, :w]
    else:
        raw = styler(photo)
    if not np.isfinite(raw).all():
        raise RunError("the style network gave values that are not finite numbers (NaN or infinity): its weights "
                       "are broken; train or export the model again")
    out = np.clip(raw, 0.0, 1.0)
    if preserve_color:  # the result's luminance with the photo's chroma
        yiq_out, yiq_photo = out @ _YIQ.T, photo @ _YIQ.T
        yiq_photo[..., 0] = yiq_out[..., 0]
        out = np.clip(yiq_photo @ np.linalg.inv(_YIQ).T, 0.0, 1.0)
    if strength < 1.0:
        out = strength * out + (1.0 - strength) * photo
    return out.astype(np.float32)


class LoadedStyle:
    """A fast style loaded once and applied to many photos or frames (the studio's live view)."""

    def __init__(self, model: str | os.PathLike, device: str = "auto") -> None:
        self.styler, self.meta = load_styler(model, device)

    def __call__(self, photo: np.ndarray, strength: float = 1.0, preserve_color: bool = False) -> np.ndarray:
        """One photo (H, W, 3 in [0, 1]) through the style, as :func:`stylize_array`."""
        return stylize_array(self.styler, photo, strength, preserve_color)


def expand_inputs(images: Sequence[str | os.PathLike | Image.Image]) -> list[str | os.PathLike | Image.Image]:
    """Files as given; a folder stands for the images in it (sorted, not recursive)."""
    out: list[str | os.PathLike | Image.Image] = []
    for item in images:
        if not isinstance(item, Image.Image) and _is_dir(item):
            found = image_files(Path(item))
            if not found:
                raise UserError(f"folder '{item}' has no images; give image files or a folder of them")
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise UserError("give at least one image to stylize")
    return out


def _is_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder; False for a name the file system cannot even look up (too long), which
    the image or output checks then explain."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def output_paths(inputs: Sequence[Any], output: str | os.PathLike, suffix: str = ".png") -> list[Path]:
    """One output per input: ``output`` itself for a single input (unless it is a folder), else
    ``output/NAME.png`` for each (the folder is made if needed)."""
    out = Path(output)
    is_folder = _is_dir(out) or str(output).endswith(("/", os.sep)) or (len(inputs) > 1 and not out.suffix)
    if not is_folder:
        if len(inputs) > 1:
            raise UserError(f"{len(inputs)} images need an output folder, not the file '{output}'")
        return [check_output_path(out)]
    check_output_folder(out)  # the folder's own name and parent, before it is made
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the output folder '{out}': {e.strerror or e}") from None
    check_output_folder(out / f"x{suffix}")
    names: list[Path] = []
    for i, item in enumerate(inputs):
        stem = Path(item).stem if not isinstance(item, Image.Image) else f"image{i:03d}"
        candidate = out / f"{stem}{suffix}"
        n = 1
        while candidate in names:  # a.jpg and a.png both give a.png: keep both
            candidate, n = out / f"{stem}_{n}{suffix}", n + 1
        names.append(check_output_path(candidate))
    return names


def apply(images: Sequence[str | os.PathLike | Image.Image], s: ApplySettings, output: str | os.PathLike | None,
          events: Run) -> list[Image.Image]:
    """Stylize each image with the model; write them to ``output`` (a file, or a folder for several)."""
    inputs = expand_inputs(images)
    check_fast_style_settings(s)
    model_file = _model_file(s.model) if s.style_image is None else None
    targets = output_paths(inputs, output) if output is not None else None
    for target in targets or []:  # before any work: a result written over a photo is lost data
        refuse_output_over_inputs(target, [*inputs, model_file, s.style_image])
    if s.style_image is not None:  # any painting: its fast style, from the cache or fine-tuned now
        s = with_fast_style(s, events, len(inputs))
    styler, meta = load_styler(s.model, s.device)
    _check_memory(inputs, s, styler, meta)
    events.expect(events.done + len(inputs))
    results: list[Image.Image] = []

    def keep() -> tuple[list[Image.Image], Path | None]:
        return results, None  # every finished image is already written

    with guarded(events, keep):
        for i, item in enumerate(inputs):
            photo, name = as_image(item, "content")
            if s.size is not None:
                photo = photo.resize(long_side_size(photo, s.size), Image.Resampling.LANCZOS)
            image = image_from_array(stylize_array(styler, array_from_image(photo), s.strength, s.preserve_color))
            params = header("apply", content=name, style=meta.get("style"),
                            **as_params(s, model=meta.get("name", str(s.model))))
            image.info["dreamstyle"] = params
            if targets is not None:
                save_image(image, targets[i], params)
            results.append(image)
            events.step(Path(name).name, 0.0, preview=lambda image=image: image)  # type: ignore[misc]
    events.finish(results[-1] if results else None, targets[-1] if targets else None, {"images": len(results)})
    return results


def check_fast_style_settings(s: ApplySettings) -> None:
    """The fine-tune's own settings need a painting to fine-tune for; its photos must be a folder."""
    from ..errors import SettingError

    if s.style_image is None:
        if s.style_data is not None:
            raise SettingError("style_data", "is the training photos of a --style painting's fast style; give the "
                               "painting with --style, or leave out {style_data}")
        return
    if s.style_data is not None and not _is_dir(s.style_data):
        raise SettingError("style_data", f"'{s.style_data}' is not a folder; give a folder of training photos")


def with_fast_style(s: ApplySettings, events: Run, images: int) -> ApplySettings:
    """The settings with ``model`` set to the painting's fast style (its ONNX copy where onnxruntime runs it).
    Call :func:`check_fast_style_settings` first, with every other check, before the minutes of a fine-tune."""
    import dataclasses

    from .faststyle import fast_style

    style = fast_style(s, events, images)
    use_onnx = style.onnx is not None and s.device in ("auto", "cpu") \
        and importlib.util.find_spec("onnxruntime") is not None
    return dataclasses.replace(s, model=str(style.onnx if use_onnx else style.model))


def _model_file(model: str | os.PathLike) -> Path | None:
    """The model's own file, when it is one (not a bundled style's name)."""
    if find_bundled(str(model)) is not None:
        return None
    with contextlib.suppress(OSError, ValueError):
        if Path(model).is_file():
            return Path(model)
    return None


def _pixels(item: str | os.PathLike | Image.Image, size: int | None) -> tuple[int, int] | None:
    """(pixels, long side) of an input as it will be stylized, read from the file's header; None if it cannot
    be read (loading it then says why)."""
    try:
        if isinstance(item, Image.Image):
            w, h = item.size
        else:
            with Image.open(check_input_file(item)) as im:
                w, h = im.size
    except Exception:  # noqa: BLE001 - a bad file is reported when it is loaded, in its own words
        return None
    if w < 1 or h < 1:
        return None
    if size is not None:
        w, h = long_side_size((w, h), size)
    return w * h, max(w, h)


def _check_memory(inputs: Sequence[str | os.PathLike | Image.Image], s: ApplySettings, styler: Styler,
                  meta: dict[str, Any]) -> None:
    """Refuse up front, in one line, a photo (the largest) whose run would not fit in memory."""
    from ..fastnet.budget import check_apply_fits
    from ..fastnet.onnxrun import OnnxStyle

    sizes = [p for p in (_pixels(item, s.size) for item in inputs) if p is not None]
    if not sizes:
        return
    pixels, side = max(sizes)
    device: Any = "cpu"
    if s.device != "cpu" and not isinstance(styler, OnnxStyle):
        from ..runtime import resolve_device  # a .pt model: torch is loaded already

        device = resolve_device(s.device)
    check_apply_fits(str(meta.get("arch", "standard")), pixels, device, f"of {side} px", side)
