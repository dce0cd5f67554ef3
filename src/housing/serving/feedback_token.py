"""Signed feedback tokens: a prediction carried by its own response, so any replica can score its feedback.

A predict/infer answer carries ``X-Feedback-Token``: the request id, the served model name, the variant and
version that answered, when, and the predictions (float32, as served), signed under a key all replicas share
(a Kubernetes Secret). ``POST /v1/feedback`` with ``{"feedback_token": ..., "actual": ...}`` is scored by
whichever replica receives it, without the original prediction in memory; an altered or forged token is
refused. The signing key is not the feedback bearer token: the labelling pipeline can send actual values,
but cannot make up what was predicted.

The MAC is keyed BLAKE2b with a 128-bit tag (RFC 7693's keyed mode, a MAC by design; no length extension),
not HMAC-SHA256: in the server's hot path, where onnxruntime's trees keep the caches busy, OpenSSL's HMAC cost
~7 µs per response more than BLAKE2b, measured in-process (docs/serving.md, Performance). The key is the
SHA-256 of the secret file's text.

Layout before base64 (little-endian): issued-at (u32 unix seconds), request id length (u16), variant (u8),
model name and model version (each u16 length + UTF-8), the request id (UTF-8), the predictions (float32
each), then the 16-byte tag of all that. One row with a 32-character request id: ~120 characters; standard
base64 is safe in a header and in JSON, and one C call each way.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass

import numpy as np

from housing.serving.schema import RequestError
from housing.variants import Variant

TOKEN_HEADER = b"x-feedback-token"
PREFIX = b"f1."  # the token format's version
MAC_BYTES = 16  # a 128-bit tag: forging one is 2^128 guesses
FUTURE_SKEW_SECONDS = 300  # replicas' clocks may disagree a little
_HEAD = struct.Struct("<IHB")  # issued at, request id length, variant
_LENGTH = struct.Struct("<H")
_VARIANTS = tuple(Variant)


@dataclass(frozen=True)
class FeedbackClaim:
    """What a verified token says was predicted."""

    request_id: str
    model: str
    version: str
    variant: Variant
    issued_at: int
    predictions: list[float]


def _field(text: str) -> bytes:
    raw = text.encode()
    return _LENGTH.pack(len(raw)) + raw


class FeedbackSigner:
    """Issues tokens for responses and verifies the ones feedback brings back.

    ``max_rows``: larger responses get no token (a 1000-row token would be a ~5 KB header; their feedback
    goes to the replica that answered, by request id). ``ttl_seconds``: how long a token is accepted.
    """

    def __init__(self, secret: bytes, *, ttl_seconds: float, max_rows: int) -> None:
        self._key = hashlib.sha256(secret).digest()
        self.ttl_seconds = ttl_seconds
        self.max_rows = max_rows
        self._fixed: dict[tuple[str, str, str], tuple[int, bytes]] = {}  # per handle: variant, model+version

    def _sign(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, key=self._key, digest_size=MAC_BYTES).digest()

    def issue(
        self,
        request_id: str,
        model: str,
        version: str,
        variant: Variant,
        predictions: np.ndarray,
        now: float | None = None,
    ) -> bytes | None:
        """The token of one response (ASCII bytes), or None when it has more than ``max_rows`` rows."""
        if len(predictions) > self.max_rows:
            return None
        key = (variant, model, version)
        cached = self._fixed.get(key)
        if cached is None:
            cached = self._fixed[key] = (_VARIANTS.index(Variant(variant)), _field(model) + _field(version))
        variant_index, fixed = cached
        rid = request_id.encode()
        issued = int(time.time() if now is None else now)
        body = b"".join(
            (
                _HEAD.pack(issued, len(rid), variant_index),
                fixed,
                rid,
                np.asarray(predictions, dtype="<f4").tobytes(),
            )
        )
        return PREFIX + binascii.b2a_base64(body + self._sign(body), newline=False)

    def verify(self, token: str, now: float | None = None) -> FeedbackClaim:
        """The claim of a token this server (or a replica with the same key) issued; 400 or 404 otherwise."""
        raw = self._decode(token)
        body, tag = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(self._sign(body), tag):
            raise RequestError(
                "feedback_token: the signature does not match (altered, or signed with another key)"
            )
        # Signed by us: the layout holds.
        issued, rid_length, variant = _HEAD.unpack_from(body)
        offset = _HEAD.size
        texts = []
        for _ in range(2):  # model, version
            (length,) = _LENGTH.unpack_from(body, offset)
            offset += _LENGTH.size
            texts.append(body[offset : offset + length].decode())
            offset += length
        model, version = texts
        request_id = body[offset : offset + rid_length].decode()
        predictions = np.frombuffer(body[offset + rid_length :], dtype="<f4").astype(np.float64).tolist()
        now = time.time() if now is None else now
        age = now - issued
        if age > self.ttl_seconds:
            raise RequestError(
                f"feedback_token: expired (issued {age:.0f} s ago; tokens are accepted for "
                f"{self.ttl_seconds:g} s, --feedback-ttl-seconds)",
                status=404,
            )
        if age < -FUTURE_SKEW_SECONDS:
            raise RequestError(f"feedback_token: issued {-age:.0f} s in the future")
        return FeedbackClaim(request_id, model, version, _VARIANTS[variant], issued, predictions)

    @staticmethod
    def _decode(token: str) -> bytes:
        data = token.encode()
        if not data.startswith(PREFIX):
            raise RequestError(
                f"feedback_token: not a feedback token (expected the {PREFIX.decode()!r}... value of the "
                "prediction's X-Feedback-Token header)"
            )
        try:
            raw = binascii.a2b_base64(data[len(PREFIX) :], strict_mode=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < _HEAD.size + 2 * _LENGTH.size + MAC_BYTES:
            raise RequestError("feedback_token: malformed (not the base64 of a feedback token)")
        return raw
