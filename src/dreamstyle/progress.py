"""The terminal's view of a run: a tqdm progress bar that subscribes to run events."""

from __future__ import annotations

from typing import Any

from .events import Done, Event, Step


class ProgressBar:
    """A run-event subscriber: step, level, losses and ETA on one line; closed when the run is done."""

    def __init__(self, unit: str = "step") -> None:
        self.bar: Any = None
        self.unit = unit

    def __call__(self, event: Event) -> None:
        if isinstance(event, Step):
            if self.bar is None and event.step >= event.total:
                return  # a run done in its first step (one photo applied) needs no bar, nor tqdm's 20 ms import
            if self.bar is None:
                from tqdm.std import tqdm  # the terminal's bar: tqdm.auto would import asyncio, 30 ms

                self.bar = tqdm(total=event.total, unit=self.unit, dynamic_ncols=True, leave=False)
            self.bar.set_description(event.label, refresh=False)
            if self.unit == "step":  # a batch's bar counts jobs, which have no loss
                self.bar.set_postfix({"loss": f"{event.loss:.3g}", **{k: f"{v:.3g}" for k, v in event.parts.items()}},
                                     refresh=False)
            if event.total != self.bar.total:  # a video's scene cut adds a full first frame's steps
                self.bar.total = event.total
            self.bar.update(event.step - self.bar.n)  # a resumed video skips the steps done before
        elif isinstance(event, Done):
            self.close()

    def close(self) -> None:
        """Clear the bar's line (also on errors, so a message is not printed onto it)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
