"""Who may post ground truth: the bearer token of ``POST /v1/feedback`` and the secrets' files.

Feedback moves the live-accuracy alerts (and so retraining) and the A/B evidence ``housing abtest promote``
acts on, so it needs a credential that only the labelling pipeline holds: ``Authorization: Bearer <token>``,
compared in constant time with the token read from ``--feedback-token-file`` (a Kubernetes Secret mounted as
a file). A server without that file accepts no feedback at all. Prediction routes stay open.

Standard library only: :mod:`housing.serving.feedback_client` (what senders use) imports this module.
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from pathlib import Path

from housing.errors import ConfigError

MIN_SECRET_CHARS = 16  # `openssl rand -hex 32` gives 64
REALM = "housing-feedback"


class Refusal(StrEnum):
    """Why a feedback request's credential was refused (the 401's message says which)."""

    DISABLED = "this server accepts no feedback: it has no feedback token (--feedback-token-file)"
    MISSING = 'missing credential: send "Authorization: Bearer <feedback token>"'
    WRONG = "wrong feedback token"


def read_secret_file(path: Path, what: str) -> str:
    """A secret from a file (surrounding whitespace removed); a :class:`ConfigError` naming it otherwise."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({type(exc).__name__}: {exc})") from None
    if len(value) < MIN_SECRET_CHARS or not value.isascii() or not value.isprintable():
        raise ConfigError(
            f"{path}: the {what} must be at least {MIN_SECRET_CHARS} printable ASCII characters "
            "(e.g. `openssl rand -hex 32`)"
        )
    return value


class BearerCheck:
    """Checks ``Authorization: Bearer <token>`` against the configured token (None: feedback is off)."""

    def __init__(self, token: str | None) -> None:
        self._expected = None if token is None else token.encode()

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def refusal(self, authorization: bytes | None) -> Refusal | None:
        """None when the header carries the token; otherwise why not."""
        if self._expected is None:
            return Refusal.DISABLED
        if authorization is None:
            return Refusal.MISSING
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return Refusal.MISSING
        # compare_digest: the time taken does not tell how much of a guess was right.
        if not hmac.compare_digest(token.strip(), self._expected):
            return Refusal.WRONG
        return None
