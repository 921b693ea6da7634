"""bench/layout.py's layout measure: 1 for the same picture, low for unrelated ones, blind to strokes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from layout import layout_similarity  # noqa: E402

data = pytest.importorskip("skimage.data")


def test_a_photo_against_itself_is_one() -> None:
    photo = Image.fromarray(data.astronaut())
    assert layout_similarity(photo, photo) == pytest.approx(1.0)


def test_different_photos_score_under_a_third() -> None:
    a = Image.fromarray(data.astronaut())
    for other in (data.chelsea(), data.coffee()):
        assert layout_similarity(a, Image.fromarray(other)) < 0.3


def test_fine_strokes_and_a_larger_copy_keep_the_layout() -> None:
    photo = Image.fromarray(data.chelsea())
    rng = np.random.default_rng(0)
    noisy = np.clip(np.asarray(photo, dtype=np.float64) + rng.normal(0, 25, (*photo.size[::-1], 3)), 0, 255)
    stroked = Image.fromarray(noisy.astype(np.uint8)).resize((photo.width * 2, photo.height * 2))
    assert layout_similarity(photo, stroked) > 0.9
