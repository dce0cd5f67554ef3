"""Synthetic inference logs (the contract's record shapes) for the A/B analysis tests."""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")


def ab_records(
    n_houses: int,
    *,
    seed: int,
    champion_noise: float = 0.35,
    challenger_noise: float = 0.35,
    shared_noise: float = 0.0,
    identical: bool = False,
    challenger_share: float = 0.5,
    shadow: bool = False,
    feedback_share: float = 1.0,
    champion_latency_ms: float = 1.0,
    challenger_latency_ms: float = 1.0,
    champion_error_rate: float = 0.0,
    challenger_error_rate: float = 0.0,
    with_features: bool = False,
) -> list[dict[str, Any]]:
    """Records of ``n_houses`` single-instance requests split between two variants (or shadow-scored).

    Actual values are log-normal like house values; each model's prediction is actual + N(0, noise) error,
    so a larger noise is a worse model; ``shared_noise`` adds an error both models make on the same house
    (real models find the same houses hard); ``identical``: the challenger predicts exactly what the
    champion does. ``shadow``: the champion answers every request and the challenger scores it too (a
    second prediction record with ``"shadow": true``).
    """
    rng = np.random.default_rng(seed)
    actual = np.exp(rng.normal(0.6, 0.5, n_houses))
    shared = rng.normal(0, shared_noise, n_houses) if shared_noise else 0.0
    champ_pred = actual + shared + rng.normal(0, champion_noise, n_houses)
    chal_pred = champ_pred if identical else actual + shared + rng.normal(0, challenger_noise, n_houses)
    to_challenger = rng.random(n_houses) < challenger_share
    fed_back = rng.random(n_houses) < feedback_share
    lat = {
        "champion": rng.gamma(4.0, champion_latency_ms / 4.0, n_houses) / 1e3,
        "challenger": rng.gamma(4.0, challenger_latency_ms / 4.0, n_houses) / 1e3,
    }
    fail_draw = rng.random(n_houses)
    rates = {"champion": champion_error_rate, "challenger": challenger_error_rate}
    records: list[dict[str, Any]] = []
    for i in range(n_houses):
        request_id = f"req-{seed}-{i}"
        ts = 1_700_000_000.0 + i * 0.01
        served = "challenger" if (to_challenger[i] and not shadow) else "champion"
        if fail_draw[i] < rates[served]:
            records.append(
                {
                    "kind": "error",
                    "ts": ts,
                    "request_id": request_id,
                    "variant": served,
                    "model_version": f"sha-{served}",
                    "reason": "model_error",
                }
            )
            continue
        scored = [(served, False)] + ([("challenger", True)] if shadow else [])
        for variant, is_shadow in scored:
            record: dict[str, Any] = {
                "kind": "prediction",
                "ts": ts,
                "request_id": request_id,
                "instance": 0,
                "model": "housing",
                "model_version": f"sha-{variant}",
                "variant": variant,
                "features": dict.fromkeys(FEATURES, 1.0) if with_features else {},
                "prediction": float(chal_pred[i] if variant == "challenger" else champ_pred[i]),
                "latency_s": float(lat[variant][i]),
            }
            if is_shadow:
                record["shadow"] = True
            records.append(record)
        if fed_back[i]:
            records.append(
                {
                    "kind": "feedback",
                    "ts": ts + 5,
                    "request_id": request_id,
                    "instance": 0,
                    "actual": float(actual[i]),
                }
            )
    return records
