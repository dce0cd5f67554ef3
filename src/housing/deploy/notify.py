"""Slack incoming-webhook notification (best effort: a Slack outage never changes a rollout's outcome)."""

from __future__ import annotations

import logging

from housing.monitoring import httpjson

log = logging.getLogger(__name__)


def notify_slack(webhook_url: str, text: str, timeout: float = 10.0) -> bool:
    """POST ``{"text": ...}`` to a Slack incoming webhook; False (and a warning) when it fails."""
    try:
        resp = httpjson.request("POST", webhook_url, json_body={"text": text}, timeout=timeout)
    except (OSError, ValueError) as exc:
        log.warning("Slack notification failed: %s", exc)
        return False
    if not resp.ok:
        log.warning("Slack notification failed: HTTP %s %s", resp.status, resp.text())
    return resp.ok
