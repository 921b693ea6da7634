"""A video through a trained style network, without flicker (Ruder et al. 2016's idea, for feed-forward
networks): each frame is stylized, then blended with the previous stylized frame warped by the
input's optical flow, on the pixels the flow can trust. A scene cut (most pixels untrusted) starts
fresh. Finished frames are written to a work folder beside the output (``OUT.frames/``) as they are
done, so rerunning the same command continues where it stopped; the video is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__
from ..animation import check_animation_path, save_animation
from ..errors import UserError
from ..events import Run, guarded
from ..images import array_from_image, image_from_array, save_image
from ..motion.flow import CUT_RELIABLE, flow, reliable, warp
from ..motion.frames import read_frames
from ..settings import VideoSettings, as_params
from .apply import load_styler, stylize_array


def video(source: str | os.PathLike, output: str | os.PathLike, s: VideoSettings, events: Run,
          keep_frames: bool = False) -> Path:
    """Stylize every selected frame of ``source`` into ``output`` (.mp4 or .gif); returns the output path."""
    out = check_animation_path(output)
    frames, rate = read_frames(source, s.size, s.start, s.end, s.every)
    styler, meta = load_styler(s.model)
    params = {"dreamstyle": __version__, "command": "video", "source": str(source), "style": meta.get("style"),
              **as_params(s, model=meta.get("name", s.model)), "frames": len(frames), "fps": float(rate)}
    work = out.with_name(out.name + ".frames")
    _claim(work, params)
    events.total = len(frames)
    done: list[Image.Image] = []

    def keep() -> tuple[list[Image.Image], Path | None]:
        return done, None  # every finished frame is already in the work folder

    with guarded(events, keep):
        previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, output) of the last frame
        for i, frame in enumerate(frames):
            path = work / f"{i:06d}.png"
            photo = array_from_image(frame)
            cut, reliable_share = False, 1.0
            if path.exists():  # done by an earlier run of the same command
                image = Image.open(path).convert("RGB")
            else:
                styled = stylize_array(styler, photo, s.strength, s.preserve_color)
                if previous is not None and s.temporal_weight > 0:
                    back = flow(previous[0], photo)
                    mask = reliable(previous[0], photo, back)
                    reliable_share = float(mask.mean())
                    cut = reliable_share < CUT_RELIABLE
                    if not cut:
                        weight = s.temporal_weight * mask[..., None].astype(np.float32)
                        styled = weight * warp(previous[1], back) + (1 - weight) * styled
                image = image_from_array(styled)
                save_image(image, path)
            # the next frame builds on exactly what was saved, so a resumed run matches an unbroken one
            previous = (photo, array_from_image(image))
            done.append(image)
            events.step("cut" if cut else f"frame {i + 1}", 0.0, {"reliable": reliable_share},
                        preview=_shown(image))
        result = save_animation(done, out, float(rate), params)
    if not keep_frames:
        shutil.rmtree(work, ignore_errors=True)
    events.finish(done[-1], result, params)
    return result


def _shown(image: Image.Image) -> Callable[[], Image.Image]:
    return lambda: image


def _claim(work: Path, params: dict[str, Any]) -> None:
    """Use ``work`` for this run's frames; frames left there by a different command are not reused."""
    record = work / "run.json"
    wanted = {k: v for k, v in params.items() if k != "dreamstyle"}
    if work.exists():
        try:
            earlier = json.loads(record.read_text())
        except (OSError, ValueError):
            earlier = None
        if earlier != wanted:
            raise UserError(f"'{work}' holds the frames of a different run; delete it, or write to another output")
        return
    work.mkdir()
    record.write_text(json.dumps(wanted, sort_keys=True))
