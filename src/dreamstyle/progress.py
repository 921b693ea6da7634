"""A progress bar (tqdm) showing step, losses and ETA; silent when disabled."""

from __future__ import annotations

from tqdm.auto import tqdm


class Progress:
    def __init__(self, total: int, enabled: bool = True) -> None:
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, disable=not enabled, leave=False)

    def update(self, label: str, loss: float, parts: dict[str, float]) -> None:
        self.bar.set_description(label, refresh=False)
        self.bar.set_postfix({"loss": f"{loss:.3g}", **{k: f"{v:.3g}" for k, v in parts.items()}}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
