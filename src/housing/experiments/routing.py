"""Deterministic champion/challenger assignment: one pure, standard-library function.

Proposed for the model server's A/B router (phase 2) so that the server, the simulator and the tests agree on
which variant a key lands on. ``hash(salt:key)`` is uniform on [0, 1); keys below ``challenger_share`` go to
the challenger. A new salt per experiment reshuffles who is in which arm, so one experiment's assignment does
not leak into the next.
"""

from __future__ import annotations

import hashlib

CHAMPION, CHALLENGER = "champion", "challenger"


def bucket(key: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, key)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(key: str, salt: str, challenger_share: float) -> str:
    """``challenger`` for a ``challenger_share`` of keys, ``champion`` for the rest, the same every time."""
    return CHALLENGER if bucket(key, salt) < challenger_share else CHAMPION
