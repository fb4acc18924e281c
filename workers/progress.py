"""Docker push/pull stream lines → one overall percentage, rate-limited for display."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

# Fraction of a layer's work a status stands for.  A pull downloads then extracts, so
# each half counts for 50 %; a push only uploads.
_START = {"Preparing", "Waiting", "Pulling fs layer"}
_DONE = {"Pushed", "Layer already exists", "Pull complete", "Already exists"}
_DOWNLOADED = {"Verifying Checksum", "Download complete"}
# The engine first announces every layer (a pull lists cached ones as "Already exists"
# before the ones it will fetch); an average taken then would jump to 99 % too early.
_ANNOUNCING = {"Preparing", "Waiting", "Pulling fs layer", "Already exists"}


def layer_fraction(status: str, current: int | None, total: int | None) -> float | None:
    """How far one layer is (0..1) after ``status``; None for a status that is not about a layer."""
    ratio = min(1.0, max(0.0, current / total)) if current is not None and total else 0.0
    if status in _DONE or status.startswith("Mounted from"):
        return 1.0
    if status in _START:
        return 0.0
    if status == "Pushing":
        return ratio
    if status == "Downloading":
        return 0.5 * ratio
    if status in _DOWNLOADED:
        return 0.5
    if status == "Extracting":
        return 0.5 + 0.5 * ratio
    return None


class Progress:
    """Tracks every layer of one push or pull and yields an overall percentage.

    :meth:`feed` returns a percentage only when it grew and at least ``interval``
    seconds passed since the last one returned; the value never goes down and stays
    below 100 (100 is for the job's ``succeeded`` event, once the digest is known).
    """

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._layers: dict[str, float] = {}
        self._announced = False
        self._percent = 0
        self._emitted = 0
        self._emitted_at: float | None = None

    @property
    def percent(self) -> int:
        """The current overall percentage, whether or not it was emitted."""
        return self._percent

    @property
    def layers(self) -> Mapping[str, float]:
        return dict(self._layers)

    def feed(self, line: Mapping[str, Any]) -> int | None:
        self._update(line)
        if self._percent <= self._emitted:
            return None
        now = self._clock()
        if self._emitted_at is not None and now - self._emitted_at < self.interval:
            return None
        self._emitted, self._emitted_at = self._percent, now
        return self._percent

    def _update(self, line: Mapping[str, Any]) -> None:
        layer, status = line.get("id"), line.get("status")
        if not isinstance(layer, str) or not isinstance(status, str):
            return
        detail = line.get("progressDetail")
        current = total = None
        if isinstance(detail, Mapping):
            current, total = _as_int(detail.get("current")), _as_int(detail.get("total"))
        fraction = layer_fraction(status, current, total)
        if fraction is None:
            return
        # Layers keep their best fraction: a "Retrying" or a late "Waiting" must not undo work.
        self._layers[layer] = max(fraction, self._layers.get(layer, 0.0))
        if status not in _ANNOUNCING:
            self._announced = True
        if not self._announced:
            return
        overall = int(100 * sum(self._layers.values()) / len(self._layers))
        # A layer announced late lowers the average; the displayed value must not drop.
        self._percent = max(self._percent, min(99, overall))


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
