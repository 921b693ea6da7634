"""Where style networks live (torch-free).

* The bundled styles: trained ``small`` networks in ``fastnet/bundled/``, each ``NAME.pt`` (for torch:
  fine-tuning, export) beside ``NAME.onnx`` (the same network for onnxruntime, so a torch-free install
  applies it) and ``NAME.jpg``, a small copy of its painting.
* The training photos shipped for fine-tuning (``fastnet/photos/``, licences in its SOURCES.md).
* The per-user cache of fast styles that ``apply --style`` fine-tunes (see tasks/faststyle.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    return onnx_copy(BUNDLED_DIR / f"{name}.pt")


def onnx_copy(model: Path) -> Path | None:
    """The ONNX copy beside a model file (``NAME.onnx`` next to ``NAME.pt``), if there is one."""
    path = model.with_suffix(".onnx")
    return path if path.is_file() else None


# --- fast styles fine-tuned for a user's painting (apply --style), cached per user -----------------------

TRAINING_PHOTOS = Path(__file__).resolve().parent / "photos"  # redistributable photos; see photos/SOURCES.md


def cache_dir() -> Path:
    """Where fast styles are cached: ``$DREAMSTYLE_CACHE/styles``, else ``$XDG_CACHE_HOME/dreamstyle/styles``,
    else ``~/.cache/dreamstyle/styles``."""
    import os

    root = os.environ.get("DREAMSTYLE_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                            "dreamstyle")
    return Path(root) / "styles"


def cached_styles() -> list[dict[str, Any]]:
    """The finished fast styles in the cache, newest first: each entry's metadata (painting, steps, seconds)
    with its ``file`` and its ``onnx`` copy (or None). An entry whose description cannot be read is listed
    by its files alone."""
    entries = []
    folder = cache_dir()
    for model in folder.glob("*.pt") if folder.is_dir() else []:
        if model.name.endswith(".partial.pt"):
            continue
        try:
            info = json.loads(model.with_suffix(".json").read_text())
        except (OSError, ValueError):
            info = {}
        onnx = onnx_copy(model)
        entries.append({**(info if isinstance(info, dict) else {}), "file": str(model),
                        "onnx": None if onnx is None else str(onnx), "modified": model.stat().st_mtime})
    return sorted(entries, key=lambda e: -e["modified"])


def clear_cached() -> tuple[int, int]:
    """Delete every cached fast style (finished or half-trained): (files removed, bytes freed)."""
    folder, count, freed = cache_dir(), 0, 0
    if not folder.is_dir():
        return 0, 0
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".pt", ".onnx", ".json", ".lock"):
            size = path.stat().st_size
            path.unlink()
            count, freed = count + 1, freed + size
    return count, freed
