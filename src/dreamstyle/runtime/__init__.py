"""Where a run happens: the device, the network's precision and autocast, and CPU preparation.

Importing the package is torch-free (the settings read its options); the rest imports torch when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import lazy_attributes
from .options import DEVICES, PRECISIONS

if TYPE_CHECKING:
    from .device import autocast, check_precision, defer_dynamo, prepare_cpu, resolve_device, resolve_precision

_lazy = lazy_attributes(__name__, {name: "device" for name in ("autocast", "check_precision", "defer_dynamo",
                                                               "prepare_cpu", "resolve_device", "resolve_precision")})


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = ["DEVICES", "PRECISIONS", "autocast", "check_precision", "defer_dynamo", "prepare_cpu", "resolve_device",
           "resolve_precision"]
