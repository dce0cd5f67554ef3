"""Alertmanager webhook receiver that asks GitHub to retrain: ``housing retrain-trigger``.

Alertmanager (route for ``category=~"performance|drift"``, k8s/monitoring/alertmanager/alertmanager.yml)
POSTs its webhook JSON here with ``Authorization: Bearer <token>``. For every *firing* notification of an
alert group not seen within the de-duplication TTL, the trigger sends a GitHub ``repository_dispatch``
(event type ``retrain``) whose ``client_payload`` carries the alert details; the retrain workflow listens for
it. Resolved notifications and repeats are acknowledged without dispatching.

No web framework (``http.server``): it runs from the serving image next to the model, whose pydantic and
pydantic-settings read :class:`TriggerSettings`.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from housing.errors import HousingError
from housing.monitoring import httpjson
from housing.strict import ENV_PREFIX, OneLineErrors, StrictSettings, flag_and_env

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/alertmanager"
HEALTH_PATHS = ("/healthz", "/-/healthy", "/-/ready")
MAX_BODY_BYTES = 1 << 20
MIN_TOKEN_LENGTH = 16
# GitHub rejects a client_payload with more than 10 top-level properties.
MAX_PAYLOAD_PROPERTIES = 10
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class RetrainTriggerError(HousingError):
    """The retrain trigger is misconfigured (token, repository, URL)."""


class InvalidNotificationError(ValueError):
    """The request body is not an Alertmanager webhook notification."""


class DispatchError(RuntimeError):
    """GitHub did not accept the repository_dispatch request."""


class TriggerSettings(OneLineErrors, StrictSettings):
    """What ``housing retrain-trigger`` runs with: flags, or the ``HOUSING_*`` env vars that
    k8s/base/retrain-trigger.yaml sets (``HOUSING_RETRAIN_<FIELD>``; the GitHub ones keep their names).
    Tokens come from env vars or files, never from flags."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix=f"{ENV_PREFIX}RETRAIN_", populate_by_name=True
    )
    setting_name: ClassVar[str] = "retrain-trigger"
    setting_error: ClassVar[type[HousingError]] = RetrainTriggerError

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0: a free port
    github_repository: str = Field(
        validation_alias=f"{ENV_PREFIX}GITHUB_REPOSITORY", json_schema_extra={"flag": "--repository"}
    )
    github_api_url: str = Field("https://api.github.com", validation_alias=f"{ENV_PREFIX}GITHUB_API_URL")
    event_type: str = Field("retrain", min_length=1, max_length=100)  # GitHub's limit
    dedup_ttl: float = Field(6 * 3600.0, ge=0)  # seconds during which a group's repeats are not dispatched
    dry_run: bool = False
    webhook_token: SecretStr = Field(json_schema_extra={"flag": "--webhook-token-file"})
    github_token: SecretStr | None = Field(
        None, validation_alias="GITHUB_TOKEN", json_schema_extra={"flag": "--github-token-file"}
    )
    max_alerts_in_payload: int = Field(10, ge=1, json_schema_extra={"flag": None})
    timeout: float = Field(10.0, gt=0, json_schema_extra={"flag": None})  # seconds per GitHub request

    @field_validator("webhook_token")
    @classmethod
    def _long_token(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    @field_validator("github_repository")
    @classmethod
    def _owner_and_name(cls, value: str) -> str:
        if not _REPOSITORY.match(value) or value == "OWNER/REPO":  # the manifest's placeholder
            raise ValueError("must look like owner/name")
        return value

    @field_validator("github_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return httpjson.check_url(value)

    @model_validator(mode="after")
    def _token_unless_dry_run(self) -> TriggerSettings:
        if not self.dry_run and self.github_token is None:
            raise ValueError(
                f"a GitHub token ({flag_and_env(TriggerSettings, 'github_token')}) is required unless "
                f"dry run ({flag_and_env(TriggerSettings, 'dry_run')}) is on"
            )
        return self

    @property
    def dispatch_url(self) -> str:
        return f"{self.github_api_url.rstrip('/')}/repos/{self.github_repository}/dispatches"


class Deduplicator:
    """Remembers (group key, status) pairs for a TTL; a key is claimed while its dispatch is in flight."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim(self, key: tuple[str, str]) -> bool:
        """True if the caller should act on ``key`` (first time, or TTL expired); marks it as seen."""
        now = self._clock()
        with self._lock:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self._ttl_s}
            if key in self._seen:
                return False
            self._seen[key] = now
            return True

    def release(self, key: tuple[str, str]) -> None:
        """Forget ``key`` (its dispatch failed) so that Alertmanager's retry can succeed."""
        with self._lock:
            self._seen.pop(key, None)


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str
    dispatched: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.status < 400 else "error",
            "message": self.message,
            "dispatched": self.dispatched,
        }


def parse_notification(body: bytes) -> dict[str, Any]:
    """Decode and minimally validate an Alertmanager webhook (version 4) body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidNotificationError(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidNotificationError("body must be a JSON object")
    for field, kind in (("groupKey", str), ("status", str), ("alerts", list)):
        if not isinstance(data.get(field), kind):
            raise InvalidNotificationError(f"field {field!r} is missing or not a {kind.__name__}")
    if data["status"] not in ("firing", "resolved"):
        raise InvalidNotificationError(f"field 'status' must be firing or resolved, got {data['status']!r}")
    if not all(isinstance(alert, dict) for alert in data["alerts"]):
        raise InvalidNotificationError("field 'alerts' must be a list of objects")
    return data


def dispatch_payload(notification: dict[str, Any], event_type: str, max_alerts: int) -> dict[str, Any]:
    """The repository_dispatch request body: event type + alert details (<= 10 top-level properties)."""
    firing = [a for a in notification["alerts"] if a.get("status", "firing") == "firing"]
    alerts = [
        {
            "alertname": a.get("labels", {}).get("alertname"),
            "labels": a.get("labels", {}),
            "summary": a.get("annotations", {}).get("summary"),
            "runbook_url": a.get("annotations", {}).get("runbook_url"),
            "starts_at": a.get("startsAt"),
            "fingerprint": a.get("fingerprint"),
        }
        for a in firing[:max_alerts]
    ]
    client_payload = {
        "source": "alertmanager",
        "status": notification["status"],
        "group_key": notification["groupKey"],
        "alertnames": sorted({str(a["alertname"]) for a in alerts if a["alertname"]}),
        "common_labels": notification.get("commonLabels", {}),
        "summary": notification.get("commonAnnotations", {}).get("summary"),
        "alerts": alerts,
        "truncated_alerts": len(firing) - len(alerts) + int(notification.get("truncatedAlerts", 0) or 0),
        "external_url": notification.get("externalURL"),
    }
    return {"event_type": event_type, "client_payload": client_payload}


class RetrainTrigger:
    """Decides what to do with one notification and sends the dispatch."""

    def __init__(
        self,
        settings: TriggerSettings,
        send: Callable[[str, dict[str, Any], dict[str, str], float], httpjson.HttpResponse] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._dedup = Deduplicator(settings.dedup_ttl, clock)
        self._send = send or _post

    def authorized(self, header: str | None) -> bool:
        """Constant-time comparison of ``Authorization: Bearer <token>`` with the configured token."""
        scheme, _, token = (header or "").partition(" ")
        valid = hmac.compare_digest(
            token.strip().encode(), self.settings.webhook_token.get_secret_value().encode()
        )
        return scheme.lower() == "bearer" and valid

    def handle(self, notification: dict[str, Any]) -> Outcome:
        group_key, status = notification["groupKey"], notification["status"]
        names = sorted({str(a.get("labels", {}).get("alertname")) for a in notification["alerts"]})
        if status != "firing":
            log.info("ignored %s notification for group %s (%s)", status, group_key, ", ".join(names))
            return Outcome(HTTPStatus.OK, f"{status} notification ignored")
        key = (group_key, status)
        if not self._dedup.claim(key):
            log.info(
                "duplicate notification for group %s within %.0fs: not dispatching",
                group_key,
                self.settings.dedup_ttl,
            )
            return Outcome(HTTPStatus.OK, "duplicate notification: already dispatched")
        payload = dispatch_payload(
            notification, self.settings.event_type, self.settings.max_alerts_in_payload
        )
        if self.settings.dry_run:
            log.info("dry run: would POST %s %s", self.settings.dispatch_url, json.dumps(payload))
            return Outcome(HTTPStatus.OK, "dry run: dispatch logged, not sent")
        try:
            self._dispatch(payload)
        except (DispatchError, OSError) as exc:
            self._dedup.release(key)  # let Alertmanager's retry (it got a 5xx) try again
            log.error("repository_dispatch for group %s failed: %s", group_key, exc)
            return Outcome(HTTPStatus.BAD_GATEWAY, f"GitHub dispatch failed: {exc}")
        log.info(
            "dispatched %r to %s for group %s (%s)",
            self.settings.event_type,
            self.settings.github_repository,
            group_key,
            ", ".join(names),
        )
        return Outcome(HTTPStatus.ACCEPTED, "retrain dispatched", dispatched=True)

    def _dispatch(self, payload: dict[str, Any]) -> None:
        token = self.settings.github_token
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token.get_secret_value() if token else ''}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "housing-retrain-trigger",
        }
        resp = self._send(self.settings.dispatch_url, payload, headers, self.settings.timeout)
        if not resp.ok:
            raise DispatchError(f"HTTP {resp.status} from {self.settings.dispatch_url}: {resp.text()}")


def _post(
    url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
) -> httpjson.HttpResponse:
    return httpjson.request("POST", url, json_body=payload, headers=headers, timeout=timeout)


def make_handler(trigger: RetrainTrigger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "housing-retrain-trigger"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path in HEALTH_PATHS:
                self._reply(Outcome(HTTPStatus.OK, "healthy"))
            else:
                self._reply(Outcome(HTTPStatus.NOT_FOUND, f"no route {self.path}"))

        def do_POST(self) -> None:
            if self.path != WEBHOOK_PATH:
                self._reply(Outcome(HTTPStatus.NOT_FOUND, f"no route {self.path}; POST {WEBHOOK_PATH}"))
                return
            if not trigger.authorized(self.headers.get("Authorization")):
                log.warning("rejected unauthenticated webhook from %s", self.client_address[0])
                self._reply(
                    Outcome(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token"),
                    {"WWW-Authenticate": 'Bearer realm="housing-retrain-trigger"'},
                )
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._reply(Outcome(HTTPStatus.BAD_REQUEST, f"body must be 1..{MAX_BODY_BYTES} bytes"))
                return
            try:
                notification = parse_notification(self.rfile.read(length))
            except InvalidNotificationError as exc:
                log.warning("rejected malformed webhook: %s", exc)
                self._reply(Outcome(HTTPStatus.BAD_REQUEST, str(exc)))
                return
            self._reply(trigger.handle(notification))

        def _reply(self, outcome: Outcome, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(outcome.as_json()).encode()
            self.send_response(outcome.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.client_address[0], format % args)

    return Handler


def make_server(trigger: RetrainTrigger, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server bound to ``host:port`` (port 0 picks a free one); call serve_forever()."""
    server = ThreadingHTTPServer((host, port), make_handler(trigger))
    server.daemon_threads = True
    return server
