"""KServe InferenceService: read the predictor's rollout state and build merge-patch bodies (plain dicts).

KServe Serverless canary semantics (kserve.github.io, "Canary Rollout Strategy"):
- ``spec.predictor.canaryTrafficPercent: N`` sends N% to the latest ready revision, the rest to the last
  revision rolled out at 100% (status ``traffic`` entries tagged ``latest`` and ``prev``);
- removing the field promotes the latest revision to 100%;
- ``canaryTrafficPercent: 0`` pins 100% back on the previous revision (rollback).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from housing.errors import HousingError

PREDICTOR_CONTAINER = "kserve-container"


class CanaryError(HousingError):
    """The canary cannot proceed: missing/invalid InferenceService, API refusal, bad flags."""


@dataclass(frozen=True)
class PredictorState:
    """What the controller needs to know about an InferenceService's predictor, from spec and status."""

    image: str | None
    canary_percent: int | None
    ready: bool
    ready_message: str
    generation: int | None
    observed_generation: int | None
    latest_created: str | None
    latest_ready: str | None
    latest_rolledout: str | None
    previous_rolledout: str | None
    traffic: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def status_current(self) -> bool:
        """The controller has seen the latest spec (no stale status right after a patch)."""
        if self.generation is None or self.observed_generation is None:
            return True
        return self.observed_generation >= self.generation

    @property
    def canary_revision(self) -> str | None:
        """The revision being rolled out: the latest one, once it is ready."""
        if self.latest_ready and self.latest_ready == self.latest_created:
            return self.latest_ready
        return None

    @property
    def stable_revision(self) -> str | None:
        """The revision serving the rest of the traffic (KServe tags it ``prev`` during a canary)."""
        for entry in self.traffic:
            if entry.get("tag") == "prev" and entry.get("revisionName"):
                return str(entry["revisionName"])
        candidates = (self.previous_rolledout, self.latest_rolledout)
        return next((rev for rev in candidates if rev and rev != self.canary_revision), None)

    def traffic_percent(self, revision: str | None) -> int | None:
        """Percent of traffic status reports for ``revision`` (None when status has no traffic block)."""
        if not self.traffic or revision is None:
            return None
        return sum(int(e.get("percent") or 0) for e in self.traffic if e.get("revisionName") == revision)


def _predictor(obj: dict[str, Any]) -> dict[str, Any]:
    predictor = (obj.get("spec") or {}).get("predictor")
    if not isinstance(predictor, dict):
        raise CanaryError("InferenceService has no spec.predictor")
    return predictor


def _container_index(predictor: dict[str, Any]) -> int:
    containers = predictor.get("containers") or []
    if not containers:
        raise CanaryError("InferenceService spec.predictor.containers is empty: not a custom predictor")
    names = [c.get("name") for c in containers]
    return names.index(PREDICTOR_CONTAINER) if PREDICTOR_CONTAINER in names else 0


def parse_state(obj: dict[str, Any]) -> PredictorState:
    predictor = _predictor(obj)
    containers = predictor.get("containers") or []
    image = containers[_container_index(predictor)].get("image") if containers else None
    status = obj.get("status") or {}
    component = (status.get("components") or {}).get("predictor") or {}
    ready_condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    percent = predictor.get("canaryTrafficPercent")
    return PredictorState(
        image=image,
        canary_percent=None if percent is None else int(percent),
        ready=ready_condition.get("status") == "True",
        ready_message=str(ready_condition.get("message") or ready_condition.get("reason") or ""),
        generation=(obj.get("metadata") or {}).get("generation"),
        observed_generation=status.get("observedGeneration"),
        latest_created=component.get("latestCreatedRevision"),
        latest_ready=component.get("latestReadyRevision"),
        latest_rolledout=component.get("latestRolledoutRevision"),
        previous_rolledout=component.get("previousRolledoutRevision"),
        traffic=tuple(component.get("traffic") or ()),
    )


def percent_patch(percent: int | None) -> dict[str, Any]:
    """Merge patch setting (or, with None, removing = promoting) canaryTrafficPercent."""
    return {"spec": {"predictor": {"canaryTrafficPercent": percent}}}


def start_patch(obj: dict[str, Any], image: str, percent: int) -> dict[str, Any]:
    """Merge patch that starts a canary of ``image`` at ``percent`` in one step.

    A JSON merge patch replaces lists wholesale, so the containers list is sent complete, with only the
    predictor container's image changed.
    """
    predictor = _predictor(obj)
    containers = copy.deepcopy(predictor.get("containers") or [])
    containers[_container_index(predictor)]["image"] = image
    return {"spec": {"predictor": {"canaryTrafficPercent": percent, "containers": containers}}}


def promote_patch() -> dict[str, Any]:
    """Remove canaryTrafficPercent: the canary revision takes 100% and becomes the rolled-out one."""
    return percent_patch(None)


def rollback_patch() -> dict[str, Any]:
    """canaryTrafficPercent 0: all traffic back on the previous rolled-out revision."""
    return percent_patch(0)
