"""Retrain trigger: auth, de-duplication, dispatch to a GitHub stand-in, error handling."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from github_standin import GitHubStandin

from housing.monitoring.retrain_trigger import (
    MAX_PAYLOAD_PROPERTIES,
    RetrainTrigger,
    RetrainTriggerError,
    TriggerSettings,
    make_server,
)

TOKEN = "webhook-secret-0123456789abcdef"


def notification(
    group='{}/{category=~"performance|drift"}:{alertname="ModelPerformanceDegraded"}',
    status="firing",
    n_alerts=1,
) -> dict:
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": "ModelPerformanceDegraded",
                "namespace": "housing-production",
                "model": "housing",
                "variant": "champion",
                "category": "performance",
                "pod": f"p{i}",
            },
            "annotations": {"summary": "MAE is 0.450, above 0.40", "runbook_url": "https://x/#r"},
            "startsAt": "2025-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"f{i}",
        }
        for i in range(n_alerts)
    ]
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "housing-retrain-production",
        "groupLabels": {"category": "performance"},
        "commonLabels": {"alertname": "ModelPerformanceDegraded", "category": "performance"},
        "commonAnnotations": {"summary": "MAE is 0.450, above 0.40"},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def github():
    with GitHubStandin() as gh:
        yield gh


@pytest.fixture
def trigger_factory(github):
    servers = []

    def make(**overrides):
        clock = overrides.pop("clock", Clock())
        settings = TriggerSettings(
            **(
                {
                    "webhook_token": TOKEN,
                    "github_repository": github.repository,
                    "github_token": github.token,
                    "github_api_url": github.url,
                    "dedup_ttl": 60.0,
                }
                | overrides
            )
        )
        server = make_server(RetrainTrigger(settings, clock=clock), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1], clock

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def call(port, method="POST", path="/alertmanager", body=None, token=TOKEN, raw=None, scheme="Bearer"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, (json.loads(payload) if payload else None), dict(resp.getheaders())


def test_firing_notification_dispatches_retrain_with_alert_details(trigger_factory, github):
    port, _ = trigger_factory()
    status, body, _ = call(port, body=notification(n_alerts=2))
    assert status == 202
    assert body["dispatched"] is True
    assert len(github.dispatches) == 1
    sent = github.dispatches[0]
    assert sent["headers"]["authorization"] == f"Bearer {github.token}"
    assert sent["headers"]["accept"] == "application/vnd.github+json"
    assert sent["headers"]["x-github-api-version"] == "2022-11-28"
    assert sent["body"]["event_type"] == "retrain"
    payload = sent["body"]["client_payload"]
    assert len(payload) <= MAX_PAYLOAD_PROPERTIES
    assert payload["alertnames"] == ["ModelPerformanceDegraded"]
    assert payload["status"] == "firing"
    assert payload["group_key"].startswith("{}/")
    assert [a["labels"]["pod"] for a in payload["alerts"]] == ["p0", "p1"]
    assert payload["alerts"][0]["summary"] == "MAE is 0.450, above 0.40"


def test_many_alerts_are_truncated_in_the_payload(trigger_factory, github):
    port, _ = trigger_factory(max_alerts_in_payload=3)
    call(port, body=notification(n_alerts=7))
    payload = github.dispatches[0]["body"]["client_payload"]
    assert len(payload["alerts"]) == 3
    assert payload["truncated_alerts"] == 4


@pytest.mark.parametrize(
    ("token", "scheme"),
    [(None, "Bearer"), ("wrong-token-0123456789", "Bearer"), (TOKEN, "Basic"), ("", "Bearer")],
)
def test_unauthenticated_callers_are_refused(trigger_factory, github, token, scheme):
    port, _ = trigger_factory()
    status, body, headers = call(port, body=notification(), token=token, scheme=scheme)
    assert status == 401
    assert "bearer token" in body["message"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert github.dispatches == []


def test_repeats_of_a_group_are_deduplicated_until_the_ttl_expires(trigger_factory, github):
    port, clock = trigger_factory(dedup_ttl=60.0)
    assert call(port, body=notification())[0] == 202
    status, body, _ = call(port, body=notification())
    assert status == 200
    assert "duplicate" in body["message"]
    assert call(port, body=notification(group="another-group"))[0] == 202  # other groups are independent
    clock.now += 61
    assert call(port, body=notification())[0] == 202
    assert len(github.dispatches) == 3


def test_concurrent_repeats_dispatch_once(trigger_factory, github):
    port, _ = trigger_factory()
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(s for s, _, _ in pool.map(lambda _: call(port, body=notification()), range(8)))
    assert statuses.count(202) == 1
    assert statuses.count(200) == 7
    assert len(github.dispatches) == 1


def test_resolved_notifications_do_not_dispatch(trigger_factory, github):
    port, _ = trigger_factory()
    status, body, _ = call(port, body=notification(status="resolved"))
    assert status == 200
    assert "ignored" in body["message"]
    assert github.dispatches == []


def test_github_failure_answers_5xx_so_alertmanager_retries_and_the_retry_dispatches(trigger_factory, github):
    port, _ = trigger_factory()
    github.fail_next = [500]
    status, body, _ = call(port, body=notification())
    assert status == 502
    assert "HTTP 500" in body["message"]
    assert call(port, body=notification())[0] == 202  # not remembered as dispatched
    assert len(github.dispatches) == 1


def test_wrong_github_token_or_unreachable_github_is_a_502(trigger_factory, github):
    port, _ = trigger_factory(github_token="expired-token")
    assert call(port, body=notification())[0] == 502
    port, _ = trigger_factory(github_api_url="http://127.0.0.1:9", timeout=2)
    assert call(port, body=notification())[0] == 502


def test_dry_run_logs_instead_of_dispatching(trigger_factory, github, caplog):
    caplog.set_level("INFO", logger="housing.monitoring.retrain_trigger")
    port, _ = trigger_factory(dry_run=True, github_token=None)
    status, body, _ = call(port, body=notification())
    assert status == 200
    assert "dry run" in body["message"]
    assert github.dispatches == []
    assert any(
        "would POST" in r.getMessage() and '"event_type": "retrain"' in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"status": "firing", "alerts": []}).encode(), "groupKey"),
        (json.dumps({"groupKey": "g", "status": "pending", "alerts": []}).encode(), "firing or resolved"),
        (json.dumps({"groupKey": "g", "status": "firing", "alerts": [1]}).encode(), "list of objects"),
    ],
)
def test_malformed_notifications_are_400(trigger_factory, github, raw, message):
    port, _ = trigger_factory()
    status, body, _ = call(port, raw=raw)
    assert status == 400
    assert message in body["message"]
    assert github.dispatches == []


def test_oversized_body_and_unknown_routes(trigger_factory):
    port, _ = trigger_factory()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/alertmanager")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", str((1 << 20) + 1))  # refused before the body is read
    conn.endheaders()
    assert conn.getresponse().status == 400
    conn.close()
    assert call(port, path="/other", body=notification())[0] == 404
    assert call(port, method="GET", path="/nope")[0] == 404
    status, body, _ = call(port, method="GET", path="/healthz", token=None)
    assert status == 200
    assert body["message"] == "healthy"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_token": "short"}, "at least 16"),
        ({"github_repository": "not a repo"}, "owner/name"),
        ({"github_repository": "OWNER/REPO"}, "owner/name"),
        ({"github_token": None}, "GITHUB_TOKEN"),
        ({"github_api_url": "file:///etc/passwd"}, "HOUSING_GITHUB_API_URL"),
        ({"dedup_ttl": -1}, "TTL"),
    ],
)
def test_misconfiguration_is_refused_at_startup(overrides, message):
    settings = {"webhook_token": TOKEN, "github_repository": "acme/housing", "github_token": "t"} | overrides
    with pytest.raises(RetrainTriggerError, match=message):
        TriggerSettings(**settings)
