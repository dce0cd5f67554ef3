"""Champion/challenger (A/B) routing: which model handle answers a request.

Assignment is one pure function, :func:`assign_variant`, shared by the server and the tests, so they agree on
the variant a key lands on: ``sha256(salt:key)`` is uniform on [0, 1), and keys below ``challenger_share`` go
to the challenger. A new salt per experiment reshuffles who is in which arm, so one
experiment's assignment does not leak into the next.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

from housing.serving.settings import AbMode
from housing.variants import Variant

if TYPE_CHECKING:
    from housing.serving.model import ModelHandle


def bucket(key: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, key)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(key: str, salt: str, challenger_share: float) -> Variant:
    """The challenger for a ``challenger_share`` of keys, the champion for the rest, the same every time."""
    return Variant.CHALLENGER if bucket(key, salt) < challenger_share else Variant.CHAMPION


class Router:
    """Chooses the model handle that answers a request.

    ``mode``: ``off`` (the champion only; no routing work per request), ``split`` (a ``challenger_share`` of
    routing keys goes to the challenger by :func:`assign_variant` on ``salt:key``; a request without a key
    is assigned at random with the same share) or ``shadow`` (the champion answers everything, the
    challenger scores the same rows afterwards).
    """

    def __init__(
        self,
        champion: ModelHandle | Any,
        challenger: ModelHandle | Any | None = None,
        *,
        mode: AbMode | str = AbMode.OFF,
        challenger_share: float = 0.5,
        salt: str | None = None,
    ) -> None:
        if mode not in tuple(AbMode):
            *others, last = (m.value for m in AbMode)
            raise ValueError(f"A/B mode must be {', '.join(others)} or {last}, got {mode!r}")
        mode = AbMode(mode)
        if mode is not AbMode.OFF and challenger is None:
            raise ValueError(f"A/B mode {mode.value!r} needs a challenger model")
        if not 0.0 <= challenger_share <= 1.0:
            raise ValueError(f"challenger share must be in [0, 1], got {challenger_share}")
        self.champion = champion
        self.challenger = challenger if mode is not AbMode.OFF else None
        self.mode = mode
        self.name: str = champion.name
        self.challenger_share = challenger_share
        self.salt = salt or (f"{champion.version}/{challenger.version}" if challenger is not None else "")
        self.split = mode is AbMode.SPLIT
        self.shadow = self.challenger if mode is AbMode.SHADOW else None
        self._random = random.Random()  # requests without a routing key  # noqa: S311 - not security relevant

    @property
    def handles(self) -> list[ModelHandle]:
        return [self.champion] if self.challenger is None else [self.champion, self.challenger]

    def pick(self, routing_key: str | None = None) -> ModelHandle:
        """The handle that answers: by the hashed routing key in split mode, else the champion."""
        if not self.split:
            return self.champion
        assert self.challenger is not None
        if routing_key:
            chosen = assign_variant(routing_key, self.salt, self.challenger_share)
            return self.challenger if chosen is Variant.CHALLENGER else self.champion
        return self.challenger if self._random.random() < self.challenger_share else self.champion

    def version(self, version: str) -> ModelHandle | None:
        """The handle serving exactly this model version (a V2 request for an explicit version)."""
        for handle in self.handles:
            if handle.version == version:
                return handle
        return None

    def ready(self) -> bool:
        return all(handle.ready for handle in self.handles)
