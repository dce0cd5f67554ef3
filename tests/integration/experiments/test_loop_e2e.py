"""The closed loop end to end, shortened: drift detected, challenger retrained, A/B verdict, promotion."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from housing.experiments.loop import LoopConfig, LoopSummary, run_loop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def digests() -> dict[str, str]:
    """sha256 of the repository's own model artifact and tracking store (when present)."""
    files = [ROOT / "models" / "metadata.json", ROOT / "models" / "model.onnx", ROOT / "mlflow.db"]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists()}


def test_shortened_loop_promotes_the_retrained_challenger_on_a_significant_verdict(tmp_path, params):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "namespace: housing-lab\nimages:\n  - name: housing-model\n    newName: registry.example/housing\n"
    )
    before = digests()
    uri_before = os.environ.get("MLFLOW_TRACKING_URI")
    config = LoopConfig(
        workdir=tmp_path / "loop",
        max_iter=300,
        baseline_houses=100,
        drift_houses=2500,
        feedback_delay=0.5,
        rate=400,
        overlay=overlay,
    )
    lines: list[str] = []
    summary = run_loop(config, params, echo=lines.append)
    steps = summary.steps
    transcript = "\n".join(lines)

    # Drift is detected on the window the server logged, and the live MAE gauge degraded.
    drift = steps.drift
    assert drift.retrain_recommended, transcript
    assert drift.drift_score >= drift.threshold
    assert drift.mae_gauge_after > 1.3 * drift.mae_gauge_before
    assert drift.labelled_rows == drift.window_rows == 2600
    # The challenger was retrained on the training rows plus the labelled window.
    assert steps.challenger.rows == steps.champion.rows + drift.labelled_rows

    # The verdict comes from the statistics: both arms at the horizon, a significant, negative difference.
    ab = steps.abtest
    assert summary.outcome == ab.verdict == "challenger_wins", transcript
    assert ab.design == "unpaired"
    assert min(ab.n_champion, ab.n_challenger) >= ab.horizon_per_arm
    assert ab.p_value < params.abtest.alpha
    assert ab.ci[1] < 0
    assert ab.mae_challenger < ab.mae_champion
    assert all(ab.guardrails.values())
    verdict = json.loads((tmp_path / "loop" / "reports" / "abtest.json").read_text())
    assert verdict["verdict"] == "challenger_wins"
    assert verdict["plan"]["summary"].startswith(f"need {ab.horizon_per_arm} per arm")
    assert "challenger_wins" in (tmp_path / "loop" / "reports" / "abtest.md").read_text()

    # Promotion moved @champion to the challenger's registered version, in the loop's own store.
    promotion = steps.promotion
    assert promotion.promoted
    assert promotion.champion_version == steps.challenger.registry.version == "2"
    assert promotion.previous == steps.champion.registry.version == "1"
    assert "dvc.lock pins " + steps.challenger.model_version in promotion.rollout
    assert "registry.example/housing:${GIT_SHA:?" in promotion.rollout
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'loop' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias(params.register_.model_name, "champion")
    assert champion.tags["model_version"] == steps.challenger.model_version

    # Nothing of the repository's was touched, and the process environment is restored.
    assert os.environ.get("MLFLOW_TRACKING_URI") == uri_before
    assert digests() == before
    assert "[10/10] promotion" in transcript
    # The summary file is the typed summary, read back whole.
    assert LoopSummary.model_validate_json((tmp_path / "loop" / "loop_summary.json").read_text()) == summary
