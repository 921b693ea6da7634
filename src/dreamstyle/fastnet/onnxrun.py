"""Running an exported style network with onnxruntime: numpy and Pillow only, no torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

META_KEY = "dreamstyle"  # the ONNX metadata entry that holds the model's metadata, as JSON


class OnnxStyle:
    """An .onnx style network: ``style(array)`` maps (H, W, 3) float32 RGB in [0, 1] to the same."""

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("applying an .onnx model needs onnxruntime: pip install 'dreamstyle[onnx]'") from None
        self.path = Path(path)
        # onnxruntime's memory arena: for the light network it is both faster and smaller (1024 x 1024, first
        # call: 0.18 s and 198 MiB against 0.22 s and 266 MiB without it; at 2048 x 2048, 1.0 s against 2.0 s,
        # for 595 MiB against 362 MiB), while the small network peaked at 817 MiB with it against 476 MiB
        # without, at the same speed (AMX Xeon and Zen 1 EPYC; BENCHMARKS.md, issue 21). The architecture is
        # in the file's metadata, read from the session: a small model's session is made again without it.
        self.session = self._session(ort, arena=True)
        self.meta: dict[str, Any] = self._metadata()
        if self.meta.get("arch") != "light":
            self.session = self._session(ort, arena=False)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise UserError(f"'{path}' does not take one image; export it again with `dreamstyle export`")
        self.input = inputs[0].name

    def _session(self, ort: Any, arena: bool) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # no warnings about unused initializers on the terminal
        options.enable_cpu_mem_arena = arena
        try:
            return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for every bad file
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise UserError(f"'{self.path}' is not a usable ONNX model ({first}); export it again with "
                            "`dreamstyle export`") from None

    def _metadata(self) -> dict[str, Any]:
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            meta = json.loads(props[META_KEY])
        except (KeyError, ValueError):
            meta = None
        if not isinstance(meta, dict):
            raise UserError(f"'{self.path}' is an ONNX model but not a dreamstyle style network (it has no "
                            "dreamstyle metadata); export one with `dreamstyle export`") from None
        return meta

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.stem)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(array.transpose(2, 0, 1)[None], dtype=np.float32)
        (y,) = self.session.run(None, {self.input: x})
        return np.asarray(y[0], dtype=np.float32).transpose(1, 2, 0)
