"""dreamstyle: neural image stylization (Gatys style transfer on swappable networks, Deep Dream, explorer,
and feed-forward style networks that train, apply and export to ONNX).

Importing it is quick and does not import torch; the tasks import torch when a run starts.
"""

from .api import apply, batch, dream, dream_zoom, explore, export, sheet, stylize, train, video  # noqa: E402
from .errors import DreamstyleError, RunError, SettingError, UserError  # noqa: E402
from .events import CancelToken, Done, Interrupted, Preview, Step  # noqa: E402
from .version import __version__  # noqa: E402, F401

__all__ = ["stylize", "dream", "dream_zoom", "explore", "sheet", "train", "apply", "export", "video", "batch",
           "Interrupted", "CancelToken", "Step", "Preview",
           "Done", "DreamstyleError", "UserError", "SettingError", "RunError", "__version__"]
