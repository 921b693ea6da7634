"""Exporting a trained style network to ONNX, for phones and browsers.

The graph takes any height and width (dynamic axes), carries the model's metadata, and is checked
after export: onnxruntime's output is compared with PyTorch's on a test image and the largest
difference reported. ``int8`` quantizes the weights with onnxruntime's dynamic quantization and
``fp16`` stores them in half precision; each reports its own difference from PyTorch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import RunError, UserError
from ..events import Run
from ..fastnet.modelfile import load_model, resolve_model
from ..fastnet.onnxrun import META_KEY, OnnxStyle
from ..images import atomic_path, check_output_folder, refuse_output_over_inputs
from ..settings import ExportSettings


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float  # against PyTorch, on a check image in [0, 1]
    mean_abs_diff: float
    bytes: int
    variant: str  # fp32, fp16 or int8


def export(model: str | os.PathLike, output: str | os.PathLike, s: ExportSettings, events: Run) -> list[ExportReport]:
    """Write ``output`` (fp32, or fp16 with ``s.fp16``) and, with ``s.int8``, ``OUT.int8.onnx`` beside it."""
    out = Path(output)
    if out.suffix.lower() != ".onnx" or _is_dir(out):
        raise UserError(f"the ONNX file '{output}' must be a file name ending in .onnx")
    check_output_folder(out)
    source = resolve_model(model)  # before any work: neither file written may be the model itself
    refuse_output_over_inputs(out, [source])
    if s.int8:
        refuse_output_over_inputs(out.with_name(out.stem + ".int8.onnx"), [source])
    try:
        import onnx
        import onnxruntime  # noqa: F401 - checked here so a missing runtime fails before the export
    except ImportError:
        raise UserError("export needs onnx and onnxruntime: pip install 'dreamstyle[onnx]'") from None
    loaded = load_model(source)
    net = loaded.net.float().eval()
    events.expect(2 + int(s.int8))
    rng = np.random.default_rng(0)
    # A smooth random test image (noise alone would not look like a photo to the network).
    check = rng.random((3, s.check_size // 8 + 1, s.check_size // 8 + 1), dtype=np.float32)
    check_t = torch.nn.functional.interpolate(torch.from_numpy(check)[None], size=(s.check_size, s.check_size + 24),
                                              mode="bicubic", align_corners=False).clamp(0, 1)
    with torch.no_grad():
        reference = net(check_t)[0].numpy().transpose(1, 2, 0)
    meta = json.dumps({**loaded.meta, "name": loaded.name})

    with tempfile.TemporaryDirectory(prefix="dreamstyle-export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        _export_graph(net, raw)
        graph = onnx.load(str(raw))
        onnx.checker.check_model(graph)
        del graph.metadata_props[:]
        graph.metadata_props.add(key=META_KEY, value=meta)
        graph.doc_string = f"dreamstyle style network '{loaded.name}' ({net.arch})"
        plain = Path(tmp) / "plain.onnx"  # fp32 with the metadata: what int8 quantizes
        if s.int8:
            onnx.save(graph, str(plain))
        if s.fp16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            graph = convert_float_to_float16(graph, keep_io_types=True)
        events.step("export", 0.0)
        reports = []
        with atomic_path(out) as target:
            onnx.save(graph, target)
        reports.append(_report(out, reference, check_t, "fp16" if s.fp16 else "fp32"))
        events.step("check", reports[-1].max_abs_diff)
        if s.int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q_out = out.with_name(out.stem + ".int8.onnx")
            with atomic_path(q_out) as target, _quiet():
                quantize_dynamic(str(plain), target, weight_type=QuantType.QUInt8)
            reports.append(_report(q_out, reference, check_t, "int8"))
            events.step("int8", reports[-1].max_abs_diff)
    events.finish(None, out, {"exported": [str(r.path) for r in reports]})
    return reports


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # a name too long: check_output_folder says so
        return False


def _export_graph(net: torch.nn.Module, path: Path) -> None:
    """The network as an ONNX graph with a dynamic height and width."""
    example = torch.rand(1, 3, 64, 72)
    try:
        with _quiet():
            torch.onnx.export(net, (example,), str(path), input_names=["image"], output_names=["stylized"],
                              dynamic_axes={"image": {2: "height", 3: "width"},
                                            "stylized": {2: "height", 3: "width"}},
                              opset_version=17, dynamo=False)
    except Exception as e:  # noqa: BLE001 - the exporter's failures are a bug to report, in one line
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise RunError(f"the ONNX export failed: {first}") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's and the quantizer's chatter (constant folding, pre-processing tips) off the terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _report(path: Path, reference: np.ndarray, check_t: torch.Tensor, variant: str) -> ExportReport:
    got = OnnxStyle(path)(check_t[0].numpy().transpose(1, 2, 0))
    diff = np.abs(got - reference)
    return ExportReport(path, float(diff.max()), float(diff.mean()), path.stat().st_size, variant)
