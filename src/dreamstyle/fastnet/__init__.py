"""Feed-forward stylization (Johnson et al. 2016): the transformer network, its model files, the bundled
styles, and the torch-free ONNX runner. Torch loads only when a model does."""

from __future__ import annotations

from .styles import BUNDLED_DIR, bundled_styles, find_bundled, painting_of

__all__ = ["BUNDLED_DIR", "bundled_styles", "find_bundled", "painting_of"]
