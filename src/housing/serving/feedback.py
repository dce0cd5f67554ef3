"""Ground-truth feedback's per-process state: what was predicted, and each variant's rolling scores.

:class:`FeedbackStore` remembers recent predictions by request id (feedback by ``request_id`` must reach the
replica that answered; a signed feedback token needs no memory, see :mod:`housing.serving.feedback_token`),
:class:`RollingScores` turns (prediction, actual) pairs into a variant's rolling MAE/R²/PPE gauges on this
replica; :mod:`housing.serving.feedback_route` answers ``POST /v1/feedback`` with them.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from housing.serving.schema import RequestError


@dataclass(frozen=True)
class Scores:
    mae: float
    r2: float
    ppe10: float
    ppe: float  # share within ±ppe_tolerance (what the ModelAccuracyDropped alert watches)
    n: int


class RollingScores:
    """MAE, R², PPE10 and PPE at ``ppe_tolerance`` over the last ``window`` (prediction, actual) pairs of one
    model variant."""

    def __init__(self, window: int, ppe_tolerance: float = 0.25) -> None:
        self._pairs: deque[tuple[float, float]] = deque(maxlen=window)
        self.ppe_tolerance = ppe_tolerance

    def add(self, predictions: list[float], actuals: list[float]) -> Scores:
        self._pairs.extend(zip(predictions, actuals, strict=True))
        pairs = np.array(self._pairs, dtype=np.float64)
        predicted, actual = pairs[:, 0], pairs[:, 1]
        error = predicted - actual
        mae = float(np.abs(error).mean())
        spread = float(((actual - actual.mean()) ** 2).sum())
        # R² is undefined until the actual values vary.
        r2 = 1.0 - float((error**2).sum()) / spread if spread > 0 else float("nan")
        absolute_error, scale = np.abs(error), np.abs(actual)
        return Scores(
            mae=mae,
            r2=r2,
            ppe10=float((absolute_error <= 0.10 * scale).mean()),
            ppe=float((absolute_error <= self.ppe_tolerance * scale).mean()),
            n=len(pairs),
        )


class FeedbackStore:
    """Recent predictions keyed by request id, bounded in total rows and in age (oldest evicted first).

    Predictions are kept as raw float32 bytes: ~300 bytes per single-row request instead of ~500 for a numpy
    view (100 000 rows remembered cost ~30 MB).
    """

    def __init__(self, capacity_rows: int, ttl_seconds: float) -> None:
        self.capacity_rows = capacity_rows
        self.ttl = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, Any, bytes]] = OrderedDict()
        self._rows = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(
        self, request_id: str, handle: Any, predictions: np.ndarray, now: float | None = None
    ) -> None:
        entries = self._entries
        previous = entries.pop(request_id, None)  # a reused id counts as new
        if previous is not None:
            self._rows -= len(previous[2]) // 4
        packed = np.asarray(predictions, dtype=np.float32).tobytes()
        entries[request_id] = (now if now is not None else time.monotonic(), handle, packed)
        self._rows += len(packed) // 4
        while self._rows > self.capacity_rows and entries:
            _, (_, _, evicted) = entries.popitem(last=False)
            self._rows -= len(evicted) // 4

    def take(
        self, request_id: str, actuals: list[float], now: float | None = None
    ) -> tuple[Any, list[float]]:
        """Return (handle, predictions) for a request and forget it: one feedback per request."""
        entry = self._entries.get(request_id)
        now = now if now is not None else time.monotonic()
        if entry is None or now - entry[0] > self.ttl:
            raise RequestError(
                f"request_id {request_id!r}: unknown, expired or already fed back "
                f"(predictions are kept {self.ttl:g} s, at most {self.capacity_rows} rows)",
                status=404,
            )
        _, handle, packed = entry
        predictions = np.frombuffer(packed, dtype=np.float32).tolist()
        check_count(request_id, predictions, actuals)
        self.forget(request_id)
        return handle, predictions

    def forget(self, request_id: str) -> None:
        """Drop a remembered prediction (fed back by token): one feedback per request on this replica."""
        entry = self._entries.pop(request_id, None)
        if entry is not None:
            self._rows -= len(entry[2]) // 4


def check_count(request_id: str, predictions: list[float], actuals: list[float]) -> None:
    """One actual value per predicted instance."""
    if len(actuals) != len(predictions):
        field = "actual" if len(actuals) == 1 else "actuals"
        raise RequestError(
            f"{field}: got {len(actuals)} value(s) but request {request_id!r} had {len(predictions)} "
            f'instance(s); send "actuals" with one value per instance'
        )
