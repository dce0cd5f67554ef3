"""The A/B verdict (:class:`~housing.experiments.verdict.AbVerdict`) as markdown for PRs and Slack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from housing.experiments.verdict import AbVerdict, VariantSummary, Verdict, write_json

HEADLINES = {
    Verdict.CHALLENGER_WINS: "challenger wins: promote it",
    Verdict.CHAMPION_WINS: "champion wins: keep it",
    Verdict.NO_DIFFERENCE: "no difference: keep the champion",
    Verdict.COLLECTING: "collecting: no decision yet",
}


def format_number(value: Any, digits: int = 4) -> str:
    """A report's number: "n/a" for None, yes/no, thousands-separated integers, ``digits`` decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _p(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _have(result: AbVerdict) -> int:
    progress = result.progress
    if result.design == "paired":
        return progress.n_pairs
    return min(progress.n_champion, progress.n_challenger)


def _latency(variant: VariantSummary) -> str:
    return f"{format_number(variant.latency_p50_ms, 3)} / {format_number(variant.latency_p95_ms, 3)}"


def render_markdown(result: AbVerdict) -> str:
    """A self-contained markdown summary with every number behind the verdict."""
    verdict = result.verdict
    plan, progress = result.plan, result.progress
    champ, chal = result.variants.champion, result.variants.challenger
    lines = [
        f"## A/B test: {HEADLINES[verdict]}",
        "",
        f"**Verdict: `{verdict.value}`** — {result.reason}.",
        "",
        f"Plan: {plan.summary}. Method: {result.method.replace('_', ' ')}; design: {result.design}; "
        f"progress {(progress.share or 0) * 100:.0f}% "
        f"({_have(result):,} of {progress.required_per_arm:,}).",
        "",
        "| | champion | challenger |",
        "|---|---|---|",
        f"| model version | {', '.join(champ.model_versions) or 'n/a'} | "
        f"{', '.join(chal.model_versions) or 'n/a'} |",
        f"| requests served (shadow) | {champ.requests:,} ({champ.shadow_requests:,}) | "
        f"{chal.requests:,} ({chal.shadow_requests:,}) |",
        f"| n with feedback (analysed) | {champ.n:,} ({champ.n_analysed:,}) | "
        f"{chal.n:,} ({chal.n_analysed:,}) |",
        f"| MAE ($100k) | {format_number(champ.mae)} | {format_number(chal.mae)} |",
        f"| MdAPE | {_pct(champ.mdape)} | {_pct(chal.mdape)} |",
        f"| PPE10 | {_pct(champ.ppe10)} | {_pct(chal.ppe10)} |",
        f"| latency p50 / p95 (ms) | {_latency(champ)} | {_latency(chal)} |",
        f"| server error rate | {_pct(champ.error_rate, 2)} ({champ.server_errors:,}) | "
        f"{_pct(chal.error_rate, 2)} ({chal.server_errors:,}) |",
    ]
    primary = result.primary
    lines += ["", "### Primary metric: MAE difference (challenger − champion)", ""]
    if primary is None:
        if result.method == "msprt":
            lines.append("Not computed yet: fewer observations than the minimum sample per arm.")
        else:
            lines.append("Not computed yet: the test is read once, at the horizon (peeking guard).")
    else:
        msprt = primary.msprt
        level = f"{primary.ci_level * 100:g}%"
        lines += [
            "| test | difference | relative | " + level + " CI | statistic | p-value | significant |",
            "|---|---|---|---|---|---|---|",
            f"| {primary.test.replace('_', ' ')} "
            f"(n {primary.n_champion:,} / {primary.n_challenger:,}) | {format_number(primary.difference)} | "
            f"{_pct(primary.relative_difference)} | "
            f"[{format_number(primary.ci_low)}, {format_number(primary.ci_high)}] (bootstrap) | "
            f"{format_number(primary.statistic, 3)} | {_p(primary.p_value)} | "
            f"{format_number(primary.significant) if result.method == 'fixed_horizon' else '(see mSPRT)'} |",
            f"| mSPRT (τ = {format_number(msprt.tau)}) | {format_number(primary.difference)} | | "
            f"[{format_number(msprt.ci_low)}, {format_number(msprt.ci_high)}] (always valid) | "
            f"Λ = {_p(msprt.likelihood_ratio)} | {_p(msprt.p_value)} | "
            f"{format_number(primary.significant) if result.method == 'msprt' else '(informative)'} |",
            "",
            f"Decided by {primary.decided_by} at alpha {primary.alpha:g}; CI: {primary.ci_method}.",
        ]
    if result.guardrails:
        lines += [
            "",
            "### Guardrails (the challenger must not be significantly worse)",
            "",
            "| guardrail | champion | challenger | test | evidence | alpha | passed |",
            "|---|---|---|---|---|---|---|",
        ]
        for rail in result.guardrails:
            if rail.name == "latency_p95":
                champion, challenger = format_number(rail.champion, 3), format_number(rail.challenger, 3)
                evidence = f"ratio ≥ {format_number(rail.ratio_lower_bound, 3)}"
            else:
                champion, challenger = _pct(rail.champion, 2), _pct(rail.challenger, 2)
                evidence = f"p = {_p(rail.p_value)}"
            lines.append(
                f"| {rail.name} | {champion} | {challenger} | {rail.test} | {evidence} | "
                f"{rail.alpha:.3g} | {format_number(rail.passed)} |"
            )
    if result.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in result.warnings]
    lines.append("")
    return "\n".join(lines)


def write_verdict(verdict: AbVerdict, json_path: Path, markdown_path: Path) -> None:
    """The verdict as JSON (what `housing abtest promote` reads) and as markdown, written atomically."""
    from housing.artifact import atomic_write_bytes

    write_json(json_path, verdict)
    atomic_write_bytes(markdown_path, render_markdown(verdict).encode())
