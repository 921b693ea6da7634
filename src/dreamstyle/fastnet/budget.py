"""The memory budget, torch-free: what this process may still allocate, and what applying a style network needs.

Free memory is the machine's available RAM, or less where the process's address-space limit (``ulimit -v``,
RLIMIT_AS) or its cgroup's memory limit leaves less; on a GPU, the GPU's. :mod:`dreamstyle.optimize.memory`
estimates the optimization runs against it; :func:`check_apply_fits` estimates ``apply`` (which runs an ONNX
model without torch, so this module imports no torch unless the device is a GPU).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Union

from ..errors import SettingError

if TYPE_CHECKING:
    import torch

Device = Union["torch.device", str]
Fix = Callable[[float], "str | tuple[str, str]"]
What = str | Callable[[str], str]

# Feed-forward style networks (fastnet.network): activation elements of one forward per input pixel, counted
# as optimize.memory.activation_elements counts them (every leaf module's output).
STYLE_NET_ELEMENTS_PER_PIXEL = {"small": 417.0, "standard": 747.0, "light": 204.0}
# A forward pass without gradients keeps only a few layers' outputs alive at once (optimize.memory's share).
FORWARD_BYTES_PER_ELEMENT = 2.0
# apply: the process (onnxruntime, numpy, Pillow; torch adds about 0.6 GiB), and the photo's copies per pixel
# (decoded, float32 in and out, the blend, the PIL result). Applying a small model to a 2048 x 2048 photo
# peaked at 2.4 GiB of RSS (onnxruntime) and 2.6 GiB (torch); this estimate says 4.5 GiB.
APPLY_BASE_BYTES = 1.0 * 2**30
APPLY_BYTES_PER_PIXEL = 64.0


def _status_bytes(field: str) -> int | None:
    """A size from /proc/self/status (VmSize, VmRSS, ...), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def address_space_room() -> float | None:
    """What the address-space limit (``ulimit -v``, RLIMIT_AS) leaves for a run, in resident bytes; None if
    there is no limit.

    Under the limit every new allocation counts against it, so a run fits when this process's address space
    now (VmSize) plus what the run adds stays under it. ``need`` counts the process itself (BASE_BYTES, its
    resident memory), so that part is given back: room = limit - VmSize + VmRSS.
    """
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return None
    if limit == resource.RLIM_INFINITY:
        return None
    size, rss = _status_bytes("VmSize"), _status_bytes("VmRSS")
    if size is None or rss is None:
        return float(limit)
    return float(max(0, limit - size + rss))


def _cgroup_room() -> float | None:
    """Memory left under this process's cgroup (v2) limit, if it has one."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next((line.strip().split(":", 2)[2] for line in f if line.startswith("0::")), None)
        if path is None:
            return None
        folder = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(folder, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.current")) as f:
            current = int(f.read().strip())
        return float(max(0, int(limit) - current))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def available_bytes(device: Device) -> float:
    """Free memory where the run happens: the GPU's; on the CPU the machine's available RAM, or less where
    the process's address-space limit (``ulimit -v``) or its cgroup's memory limit leaves less."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return float(torch.cuda.mem_get_info(device)[0])
    have: float | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    have = int(line.split()[1]) * 1024.0
                    break
    except (OSError, ValueError, IndexError):
        pass
    if have is None:
        have = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    for room in (address_space_room(), _cgroup_room()):
        if room is not None:
            have = min(have, room)
    return have


def refuse_if_short(need: float, have: float, setting: str, what: What, fix: Fix) -> None:
    """A one-line SettingError when ``need`` bytes are more than the ``have`` free: ``setting`` is the setting to
    change, ``what`` the run ("of 2048 px with vgg19", or a function of the setting named); ``fix(have)`` says
    what to change (other settings written ``{name}``, see SettingError), or returns (setting, text) to name
    another setting first."""
    if need > have:
        advice = fix(have)
        if isinstance(advice, tuple):
            setting, advice = advice
        run = what(setting) if callable(what) else what
        raise SettingError(setting, f"{run} needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB is "
                           f"free; {advice}")


def require(need: float, device: Device, setting: str, what: What, fix: Fix) -> None:
    """Refuse up front, in one line, when ``need`` bytes are more than ``device`` has free."""
    refuse_if_short(need, available_bytes(device), setting, what, fix)


def check_apply_fits(arch: str, pixels: int, device: Device, what: str, size: int) -> float:
    """Refuse when a style network of ``arch`` on a photo of ``pixels`` pixels (its long side ``size``) would
    not fit; torch-free. Returns the estimate."""
    per_pixel = FORWARD_BYTES_PER_ELEMENT * STYLE_NET_ELEMENTS_PER_PIXEL.get(arch, max(
        STYLE_NET_ELEMENTS_PER_PIXEL.values())) + APPLY_BYTES_PER_PIXEL
    need = APPLY_BASE_BYTES + per_pixel * pixels

    def fix(have: float) -> str:
        room = max(have - APPLY_BASE_BYTES, 0.0) / max(need - APPLY_BASE_BYTES, 1.0)
        fitting = int(size * math.sqrt(room) // 16 * 16)
        return f"use {{size}} {fitting} or less" if fitting >= 16 else "free some memory, or use a machine with more"

    require(need, device, "size", what, fix)
    return need
