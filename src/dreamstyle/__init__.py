"""dreamstyle: neural image stylization (Gatys style transfer on swappable networks)."""

__version__ = "0.1.0"

from .api import Interrupted, stylize  # noqa: E402
from .errors import DreamstyleError, RunError, UserError  # noqa: E402

__all__ = ["stylize", "Interrupted", "DreamstyleError", "UserError", "RunError", "__version__"]
