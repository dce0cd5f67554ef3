"""Traffic simulator: replay held-out houses against a running model server and post delayed ground truth.

Each request is one house (KServe V1 predict, one instance) sent with ``X-Routing-Key: <house id>`` so an
A/B router assigns a house to the same variant every time. Requests start on a fixed schedule (``rate``
per second) with at most ``concurrency`` in flight, and stop after ``requests`` or ``duration`` seconds,
whichever comes first. For a seeded ``feedback_share`` of the successful requests the house's true value is
posted to ``/v1/feedback`` ``feedback_delay`` seconds later, as a labelling process would: with the
server's feedback bearer token (``feedback_token_file``) and the answer's ``X-Feedback-Token``, so that any
replica scores it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator  # numpy: imported by the functions (the CLI builds the settings)

from housing.errors import ConfigError, HousingError
from housing.serving.feedback_client import (
    FEEDBACK_PATH,
    feedback_body,
    feedback_headers,
    read_feedback_token,
)
from housing.strict import OneLineErrors, Strict

if TYPE_CHECKING:
    from housing.config import DataParams

ROUTING_HEADER = "X-Routing-Key"


class TrafficError(HousingError):
    """The server could not be reached or does not behave like the model server."""


@dataclass(frozen=True)
class House:
    house_id: str
    features: list[float]
    actual: float | None


# Bounds shared with the loop's settings, which drive this simulator (housing.experiments.loop).
Rate = Annotated[float, Field(gt=0)]  # requests started per second, at most
Concurrency = Annotated[int, Field(ge=1, le=256)]  # requests in flight, at most
FeedbackShare = Annotated[float, Field(ge=0, le=1)]  # share of successful requests that get ground truth
Seconds = Annotated[float, Field(ge=0)]
Seed = Annotated[int, Field(ge=0)]  # numpy's generators take non-negative seeds only


class TrafficConfig(OneLineErrors, Strict):
    """``housing simulate traffic``'s settings: field ``x`` is flag ``--x``."""

    setting_name: ClassVar[str] = "simulate traffic"

    url: str = "http://127.0.0.1:8080"
    model: str | None = Field(None, min_length=1)  # None: the first model the server lists at /v1/models
    rate: Rate = 50.0
    requests: int = Field(1000, ge=1)
    duration: float = Field(60.0, gt=0)  # seconds of prediction traffic, at most
    concurrency: Concurrency = 8
    feedback_share: FeedbackShare = 1.0
    feedback_delay: Seconds = 1.0  # between a prediction and its ground truth
    # The file of the server's feedback bearer token: a path, so the summary (which holds this config) never
    # holds the token. Needed when feedback_share > 0.
    feedback_token_file: Path | None = None
    seed: Seed = 7
    timeout: float = Field(10.0, gt=0)  # seconds per HTTP request

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")


class LatencySummary(Strict):
    p50: float | None
    p95: float | None
    max: float | None


class FeedbackSummary(Strict):
    scheduled: int
    accepted: int
    rejected: dict[str, int]  # HTTP status -> count
    transport_errors: int


class TrafficSummary(Strict):
    """What a traffic run did (``housing simulate traffic --out-json``)."""

    url: str
    model: str
    config: TrafficConfig
    houses: int
    houses_repeated: bool
    requests_sent: int
    ok: int
    failed: dict[str, int]  # HTTP status -> count
    transport_errors: int
    stopped_by: Literal["requests", "duration"]
    variants: dict[str, int]  # X-Model-Variant -> count ("unknown" when a response had none)
    model_versions: dict[str, int]
    latency_ms: LatencySummary
    traffic_seconds: float
    elapsed_seconds: float
    achieved_rate: float | None
    missing_request_id: int
    feedback: FeedbackSummary


def load_houses(
    csv: Path,
    data_params: DataParams,
    *,
    scenario: str = "none",
    houses: int | None = None,
    needed: int | None = None,
    seed: int = 7,
) -> list[House]:
    """Houses from a CSV of the raw columns (target optional), optionally shifted by a drift scenario.

    The scenario (``housing.simulate``) draws ``houses`` rows (default: as many as ``needed`` requests, at
    most every row once; more rows than the CSV has are drawn with replacement) and shifts them; the order
    is then shuffled (seeded). Drawing fewer rows than the CSV has is what lets a region-weighted scenario
    change the mix. A house's id is its row number in ``csv``, kept through the scenario, so the routing
    key names the same house however it was shifted.
    """
    import numpy as np

    from housing.frames import read_csv
    from housing.simulate import scenario_window

    features, target = list(data_params.features), data_params.target
    frame = read_csv(csv, features)
    has_target = target in frame.columns
    frame = frame[[*features, *([target] if has_target else [])]].astype(np.float64)
    if scenario != "none" and not has_target:
        raise ConfigError(f"{csv}: scenario {scenario!r} needs the target column {target!r}")
    frame["_row"] = np.arange(len(frame), dtype=np.float64)  # survives the scenario's clip (own range)
    rows = houses if houses is not None else min(len(frame), needed or len(frame))
    if rows < 1:
        raise ConfigError(f"simulate traffic: --houses must be at least 1, got {rows}")
    window = scenario_window(frame, scenario, rows, seed, target)
    window = window.iloc[np.random.default_rng(seed).permutation(len(window))]
    X = window[features].to_numpy(np.float64)
    rows_ = window["_row"].to_numpy(np.int64)
    y = window[target].to_numpy(np.float64) if has_target else None
    return [
        House(f"{csv.stem}-{int(rows_[i])}", X[i].tolist(), None if y is None else float(y[i]))
        for i in range(len(window))
    ]


@dataclass
class _Tally:
    sent: int = 0
    ok: int = 0
    failed: Counter = field(default_factory=Counter)  # HTTP status -> count
    transport_errors: int = 0
    variants: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    missing_request_id: int = 0
    feedback_scheduled: int = 0
    feedback: Counter = field(default_factory=Counter)  # HTTP status -> count
    feedback_errors: int = 0
    stopped_by: Literal["requests", "duration"] = "requests"


def _quantile(values: list[float], q: float) -> float | None:
    import numpy as np

    return round(float(np.quantile(values, q)), 3) if values else None


async def _discover_model(client: Any, url: str) -> str:
    import httpx

    try:
        response = await client.get("/v1/models")
        models = response.json().get("models") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise TrafficError(
            f"{url}: cannot list models at /v1/models ({exc}); is the server running?"
        ) from None
    if not models:
        raise TrafficError(f"{url}/v1/models: no model listed (HTTP {response.status_code}); pass --model")
    return str(models[0])


async def run_traffic(config: TrafficConfig, houses: list[House]) -> TrafficSummary:
    """Send the traffic and return a summary (counts, variants, latencies, feedback outcomes)."""
    import httpx
    import numpy as np
    import orjson

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the summary
    if not houses:
        raise ConfigError("simulate traffic: no houses to send")
    if config.feedback_share > 0 and houses[0].actual is None:
        raise ConfigError("simulate traffic: --feedback-share > 0 needs a CSV with the target column")
    if config.feedback_share > 0 and config.feedback_token_file is None:
        raise ConfigError(
            "simulate traffic: --feedback-share > 0 needs --feedback-token-file (the file of the server's "
            "feedback token), or --feedback-share 0"
        )
    sender_headers = (
        feedback_headers(read_feedback_token(config.feedback_token_file))
        if config.feedback_token_file is not None
        else {}
    )
    rng = np.random.default_rng(config.seed)
    gives_feedback = rng.random(config.requests) < config.feedback_share
    tally = _Tally()
    limits = httpx.Limits(
        max_connections=2 * config.concurrency, max_keepalive_connections=2 * config.concurrency
    )
    async with httpx.AsyncClient(base_url=config.url, timeout=config.timeout, limits=limits) as client:
        model = config.model or await _discover_model(client, config.url)
        predict_path = f"/v1/models/{model}:predict"
        feedback_slots = asyncio.Semaphore(config.concurrency)
        pending: set[asyncio.Task] = set()
        indexes = itertools.count()
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + config.duration

        async def post_feedback(answer: httpx.Headers, actual: float, due: float) -> None:
            await asyncio.sleep(max(0.0, due - loop.time()))
            async with feedback_slots:
                try:
                    response = await client.post(
                        FEEDBACK_PATH, content=feedback_body(answer, [actual]), headers=sender_headers
                    )
                    tally.feedback[response.status_code] += 1
                except httpx.HTTPError:
                    tally.feedback_errors += 1

        async def worker() -> None:
            while True:
                i = next(indexes)
                if i >= config.requests:
                    return
                due = start + i / config.rate
                # A slow server puts the schedule behind the clock: the duration bounds wall time too.
                if due >= deadline or loop.time() >= deadline:
                    tally.stopped_by = "duration"
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                house = houses[i % len(houses)]
                body = orjson.dumps({"instances": [house.features]})
                headers = {"Content-Type": "application/json", ROUTING_HEADER: house.house_id}
                tally.sent += 1
                began = time.perf_counter()
                try:
                    response = await client.post(predict_path, content=body, headers=headers)
                except httpx.HTTPError:
                    tally.transport_errors += 1
                    continue
                if response.status_code != 200:
                    tally.failed[response.status_code] += 1
                    continue
                tally.ok += 1
                tally.latencies_ms.append((time.perf_counter() - began) * 1e3)
                tally.variants[response.headers.get("x-model-variant", "unknown")] += 1
                tally.versions[response.headers.get("x-model-version", "unknown")] += 1
                request_id = response.headers.get("x-request-id")
                if not request_id:
                    tally.missing_request_id += 1
                elif gives_feedback[i] and house.actual is not None:
                    tally.feedback_scheduled += 1
                    task = asyncio.create_task(
                        post_feedback(response.headers, house.actual, loop.time() + config.feedback_delay)
                    )
                    pending.add(task)
                    task.add_done_callback(pending.discard)

        await asyncio.gather(*(worker() for _ in range(config.concurrency)))
        traffic_elapsed = loop.time() - start
        if pending:
            await asyncio.gather(*pending)
        elapsed = loop.time() - start
    return TrafficSummary(
        url=config.url,
        model=model,
        config=config,
        houses=len(houses),
        houses_repeated=tally.sent > len(houses),
        requests_sent=tally.sent,
        ok=tally.ok,
        failed={str(k): v for k, v in sorted(tally.failed.items())},
        transport_errors=tally.transport_errors,
        stopped_by=tally.stopped_by,
        variants=dict(tally.variants.most_common()),
        model_versions=dict(tally.versions.most_common()),
        latency_ms=LatencySummary(
            p50=_quantile(tally.latencies_ms, 0.5),
            p95=_quantile(tally.latencies_ms, 0.95),
            max=round(max(tally.latencies_ms), 3) if tally.latencies_ms else None,
        ),
        traffic_seconds=round(traffic_elapsed, 3),
        elapsed_seconds=round(elapsed, 3),
        achieved_rate=round(tally.sent / traffic_elapsed, 2) if traffic_elapsed > 0 else None,
        missing_request_id=tally.missing_request_id,
        feedback=FeedbackSummary(
            scheduled=tally.feedback_scheduled,
            accepted=tally.feedback.get(202, 0),
            rejected={str(k): v for k, v in sorted(tally.feedback.items()) if k != 202},
            transport_errors=tally.feedback_errors,
        ),
    )


def format_summary(summary: TrafficSummary) -> str:
    feedback, latency = summary.feedback, summary.latency_ms
    lines = [
        f"sent {summary.requests_sent} requests to {summary.url} (model {summary.model}) in "
        f"{summary.traffic_seconds:.1f} s ({summary.achieved_rate} req/s, stopped by "
        f"{summary.stopped_by}): {summary.ok} ok, failed {summary.failed or 0}, "
        f"{summary.transport_errors} transport errors",
        f"variants {summary.variants or '{}'}; versions {summary.model_versions or '{}'}",
        f"client latency ms p50 {latency.p50} p95 {latency.p95} max {latency.max}",
        f"feedback: {feedback.scheduled} scheduled, {feedback.accepted} accepted, rejected "
        f"{feedback.rejected or 0}, {feedback.transport_errors} transport errors",
    ]
    if summary.houses_repeated:
        lines.append(
            f"warning: {summary.requests_sent} requests but {summary.houses} houses: houses repeat, so "
            "A/B observations are not independent (use more houses or fewer requests)"
        )
    return "\n".join(lines)
