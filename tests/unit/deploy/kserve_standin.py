"""Test stand-ins for a KServe InferenceService (no API server can be had on these machines).

- ``KServeStandin``: an in-memory InferenceService whose status follows KServe Serverless canary semantics
  (revisions per image, ``traffic`` entries tagged latest/prev, promote on removal, rollback on 0).
- ``KubeApiStandin``: serves it over HTTP at the real Kubernetes API path, so the official ``kubernetes``
  client (and ``housing canary``) can talk to it; records every request.

Shared by tests/unit/deploy and tests/integration/deploy.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from loopback import LoopbackServer, QuietHandler

API_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes, objects merge, everything else replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def isvc_manifest(name: str, namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "containers": [
                    {"name": "kserve-container", "image": image, "ports": [{"containerPort": 8080}]},
                ],
            }
        },
    }


class KServeStandin:
    """One InferenceService; ``revision_names`` maps images to revision names (else 00001, 00002, ...)."""

    def __init__(
        self,
        name: str = "housing",
        namespace: str = "housing-test",
        image: str = "registry.local/housing:v1",
        revision_names: dict[str, str] | None = None,
        *,
        unready_images: set[str] | None = None,
    ) -> None:
        self.name, self.namespace = name, namespace
        self.obj = isvc_manifest(name, namespace, image)
        self._names = dict(revision_names or {})
        self._unready = set(unready_images or ())
        self._revisions: dict[str, str] = {}  # image -> revision
        self.rolled_out: str | None = None
        self.previous: str | None = None
        self.patches: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._reconcile()

    # --- API surface (same as housing.deploy.kube.InferenceServiceApi) ---------------------------------

    def get(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.obj)

    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.patches.append(copy.deepcopy(body))
            status = self.obj.pop("status", None)
            self.obj = merge_patch(self.obj, body)
            self.obj["status"] = status
            self.obj["metadata"]["generation"] += 1
            self._reconcile()
            return copy.deepcopy(self.obj)

    # --- helpers for tests ------------------------------------------------------------------------------

    @property
    def predictor(self) -> dict[str, Any]:
        return self.obj["spec"]["predictor"]

    def revision_of(self, image: str) -> str:
        if image not in self._revisions:
            default = f"{self.name}-predictor-{len(self._revisions) + 1:05d}"
            self._revisions[image] = self._names.get(image, default)
        return self._revisions[image]

    def set_canary_state(self, image: str, percent: int | None) -> None:
        """Put the object straight into a given state (as if an earlier run was interrupted)."""
        patch: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        containers = copy.deepcopy(self.predictor["containers"])
        containers[0]["image"] = image
        patch["spec"]["predictor"]["containers"] = containers
        self.patch(patch)
        self.patches.clear()

    # --- what the KServe controller does ----------------------------------------------------------------

    def _reconcile(self) -> None:
        predictor = self.predictor
        image = predictor["containers"][0]["image"]
        latest = self.revision_of(image)
        ready = image not in self._unready
        if self.rolled_out is None:
            self.rolled_out = latest
        latest_ready = latest if ready else self.rolled_out
        percent = predictor.get("canaryTrafficPercent")
        if latest_ready == self.rolled_out:
            traffic = [
                {"revisionName": latest_ready, "percent": 100, "latestRevision": True, "tag": "latest"}
            ]
        elif percent is None:
            self.previous, self.rolled_out = self.rolled_out, latest_ready
            traffic = [
                {"revisionName": latest_ready, "percent": 100, "latestRevision": True, "tag": "latest"}
            ]
        else:
            self.previous = self.rolled_out
            traffic = [
                {"revisionName": latest_ready, "percent": percent, "latestRevision": True, "tag": "latest"},
                {
                    "revisionName": self.rolled_out,
                    "percent": 100 - percent,
                    "latestRevision": False,
                    "tag": "prev",
                },
            ]
        condition = (
            {"type": "Ready", "status": "True"}
            if ready
            else {
                "type": "Ready",
                "status": "False",
                "reason": "RevisionMissing",
                "message": f"Revision {latest} failed: container image pull back-off",
            }
        )
        self.obj["status"] = {
            "observedGeneration": self.obj["metadata"]["generation"],
            "conditions": [condition, {**condition, "type": "PredictorReady"}],
            "components": {
                "predictor": {
                    "latestCreatedRevision": latest,
                    "latestReadyRevision": latest_ready,
                    "latestRolledoutRevision": self.rolled_out,
                    "previousRolledoutRevision": self.previous,
                    "traffic": traffic,
                }
            },
        }

    def canary_share(self) -> tuple[str | None, int]:
        """(canary revision, percent of traffic it gets now) for traffic generators in tests."""
        with self.lock:
            for entry in self.obj["status"]["components"]["predictor"]["traffic"]:
                if entry.get("tag") == "latest" and entry["revisionName"] != self.rolled_out:
                    return entry["revisionName"], int(entry["percent"])
            return None, 0

    def stable_revision(self) -> str:
        with self.lock:
            return str(self.rolled_out)


class KubeApiStandin(LoopbackServer):
    """HTTP front for a KServeStandin at the Kubernetes API path; checks the bearer token."""

    def __init__(self, standin: KServeStandin, token: str = "test-token") -> None:
        self.standin, self.token = standin, token
        self.requests: list[dict[str, Any]] = []
        self.path = API_PATH.format(namespace=standin.namespace, name=standin.name)
        super().__init__(self._handler())

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                    "users": [{"name": "ci", "user": {"token": self.token}}],
                    "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "ci"}}],
                    "current-context": "standin",
                }
            )
        )
        return path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(QuietHandler):
            def _record(self, body: Any = None) -> None:
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": body,
                        "content_type": self.headers.get("Content-Type"),
                    }
                )

            def _reply(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _guard(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._reply(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                    return False
                if self.path.split("?")[0] != outer.path:
                    self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                    return False
                return True

            def do_GET(self) -> None:
                self._record()
                if self._guard():
                    self._reply(200, outer.standin.get())

            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                self._record(body)
                if not self._guard():
                    return
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    self._reply(415, {"kind": "Status", "code": 415, "reason": "UnsupportedMediaType"})
                    return
                self._reply(200, outer.standin.patch(body))

        return Handler
