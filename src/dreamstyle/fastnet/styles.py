"""The styles bundled with dreamstyle (torch-free): trained ``small`` networks in ``fastnet/bundled/``,
each ``NAME.pt`` (for torch: fine-tuning, export) beside ``NAME.onnx`` (the same network for onnxruntime,
so a torch-free install applies it) and ``NAME.jpg``, a small copy of its painting."""

from __future__ import annotations

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


def bundled_styles() -> dict[str, Path]:
    """Bundled style name -> its model file, in name order."""
    if not BUNDLED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.pt"))}


def find_bundled(name: str) -> Path | None:
    """The model file of bundled style ``name``, or None when there is no such style."""
    return bundled_styles().get(name)


def painting_of(name: str) -> Path:
    """The small copy of bundled style ``name``'s painting."""
    return BUNDLED_DIR / f"{name}.jpg"


def bundled_onnx(name: str) -> Path | None:
    """The ONNX export of bundled style ``name``, if it ships one."""
    path = BUNDLED_DIR / f"{name}.onnx"
    return path if path.is_file() else None
