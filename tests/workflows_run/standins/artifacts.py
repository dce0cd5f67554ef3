"""A stand-in for GitHub's artifact store (artifacts v4: the results service's twirp API + blob storage).

act 0.2.89's own server (--artifact-server-path) cannot serve @actions/artifact 6, the library of
upload-artifact v7 and download-artifact v8: it rejects CreateArtifact's ``mime_type`` field (strict
protojson), and its signed upload URLs end in base64 padding that the Azure blob SDK drops, so every block
upload is "unauthorized" (nektos/act#6021). This one speaks the same protocol as GitHub's:

- ``POST /twirp/github.actions.results.api.v1.ArtifactService/<Method>`` (JSON, snake_case fields) for
  CreateArtifact, FinalizeArtifact, ListArtifacts, GetSignedArtifactURL and DeleteArtifact, authorised by the
  job's ``ACTIONS_RUNTIME_TOKEN`` (a JWT whose ``scp`` names the run: ``Actions.Results:<run>:<job>``);
- Azure block-blob uploads to the signed URL (``comp=block`` + ``comp=blocklist``, assembled in the committed
  order) and downloads from it.

It serves HTTPS on 127.0.0.1. Like GitHub it refuses a second artifact of one name in a run (409;
upload-artifact's ``overwrite: true`` deletes first), records the size, digest and expiry (retention-days),
and returns the digest that download-artifact checks. Artifacts are scoped by run id: each act run has its
own.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standins.tls import TlsFiles

from loopback import LoopbackServer, QuietHandler

TWIRP_PREFIX = "/twirp/github.actions.results.api.v1.ArtifactService/"
BLOB_PREFIX = "/blob/"
_TWIRP_STATUS = {"invalid_argument": 400, "unauthenticated": 401, "not_found": 404, "already_exists": 409}


class TwirpError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class StoredArtifact:
    run_id: str
    job_id: str
    name: str
    mime_type: str
    expires_at: str | None
    upload_key: str
    created_at: str
    blocks: dict[str, bytes] = field(default_factory=dict)
    content: bytes | None = None
    digest: str | None = None
    id: int | None = None  # set when finalized

    @property
    def size(self) -> int:
        return len(self.content or b"")

    def files(self) -> dict[str, bytes]:
        """The zip's members, by path."""
        with zipfile.ZipFile(io.BytesIO(self.content or b"")) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}

    def listing(self) -> dict[str, Any]:
        return {
            "workflow_run_backend_id": self.run_id,
            "workflow_job_run_backend_id": self.job_id,
            "database_id": str(self.id),
            "name": self.name,
            "size": str(self.size),
            "created_at": self.created_at,
            "digest": self.digest,
        }


def _jwt_segment(claims: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


class ArtifactService(LoopbackServer):
    def __init__(self, tls: TlsFiles) -> None:
        self.artifacts: list[StoredArtifact] = []  # pending and finalized, oldest first
        self.requests: list[tuple[str, str, int]] = []  # (HTTP method, call, status)
        self.lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # runtime token -> run id
        self._ids = iter(range(5001, 10**9))
        super().__init__(self._handler(), ssl_context=tls.server_context())

    def runtime_environment(self, run_id: int) -> dict[str, str]:
        """What a GitHub runner gives each job, for run ``run_id`` (act passes them on with --env)."""
        claims = {"scp": f"Actions.GenericRead:0 Actions.Results:{run_id}:{run_id}", "exp": 4102444800}
        token = f"{_jwt_segment({'alg': 'none', 'typ': 'JWT'})}.{_jwt_segment(claims)}.{secrets.token_hex(8)}"
        with self.lock:
            self._tokens[token] = str(run_id)
        return {
            "ACTIONS_RESULTS_URL": f"{self.url}/",
            "ACTIONS_RUNTIME_URL": f"{self.url}/",
            "ACTIONS_RUNTIME_TOKEN": token,
        }

    def finalized(self, run_id: int | None = None) -> list[StoredArtifact]:
        return [a for a in self.artifacts if a.id is not None and run_id in {None, int(a.run_id)}]

    def artifact(self, name: str, run_id: int | None = None) -> StoredArtifact:
        found = [a for a in self.finalized(run_id) if a.name == name]
        if len(found) != 1:
            raise LookupError(
                f"{len(found)} finalized artifacts named {name!r} (run {run_id}): {self.finalized()}"
            )
        return found[0]

    # --- twirp ----------------------------------------------------------------------------------------------
    def _find(self, run_id: str, name: str, *, finalized: bool = True) -> StoredArtifact:
        for artifact in self.artifacts:
            if artifact.run_id == run_id and artifact.name == name and (artifact.id is not None) == finalized:
                return artifact
        raise TwirpError("not_found", f"artifact {name!r} not found in run {run_id}")

    def _signed_url(self, artifact: StoredArtifact) -> str:
        return f"{self.url}{BLOB_PREFIX}{artifact.upload_key}?sig={artifact.upload_key}"

    def _twirp(self, method: str, request: dict[str, Any], token_run: str) -> dict[str, Any]:
        run_id = str(request.get("workflow_run_backend_id", ""))
        if run_id != token_run:
            raise TwirpError("unauthenticated", f"the token is for run {token_run}, not {run_id}")
        name = str(request.get("name", ""))
        if method == "CreateArtifact":
            if any(a.id is not None for a in self.artifacts if a.run_id == run_id and a.name == name):
                raise TwirpError(
                    "already_exists", "an artifact with this name already exists on the workflow run"
                )
            self.artifacts = [a for a in self.artifacts if not (a.run_id == run_id and a.name == name)]
            expires = request.get("expires_at")
            artifact = StoredArtifact(
                run_id=run_id,
                job_id=str(request.get("workflow_job_run_backend_id", "")),
                name=name,
                mime_type=str(request.get("mime_type") or "application/zip"),
                expires_at=str(expires) if expires else None,
                upload_key=secrets.token_urlsafe(24),
                created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            self.artifacts.append(artifact)
            return {"ok": True, "signed_upload_url": self._signed_url(artifact)}
        if method == "FinalizeArtifact":
            artifact = self._find(run_id, name, finalized=False)
            if artifact.content is None:
                raise TwirpError("invalid_argument", f"artifact {name!r}: nothing was uploaded")
            digest = f"sha256:{hashlib.sha256(artifact.content).hexdigest()}"
            if request.get("hash") not in {None, digest}:
                raise TwirpError("invalid_argument", f"artifact {name!r}: hash {request['hash']} != {digest}")
            artifact.digest, artifact.id = digest, next(self._ids)
            return {"ok": True, "artifact_id": str(artifact.id)}
        if method == "ListArtifacts":
            wanted_name, wanted_id = request.get("name_filter"), request.get("id_filter")
            return {
                "artifacts": [
                    a.listing()
                    for a in self.finalized(int(run_id))
                    if wanted_name in {None, a.name} and wanted_id in {None, str(a.id)}
                ]
            }
        if method == "GetSignedArtifactURL":
            return {"signed_url": self._signed_url(self._find(run_id, name))}
        if method == "DeleteArtifact":
            artifact = self._find(run_id, name)
            self.artifacts.remove(artifact)
            return {"ok": True, "artifact_id": str(artifact.id)}
        raise TwirpError("not_found", f"no method {method}")  # twirp's bad_route, as far as clients care

    # --- blob storage ---------------------------------------------------------------------------------------
    def _blob(self, key: str, query: dict[str, list[str]]) -> StoredArtifact:
        for artifact in self.artifacts:
            if artifact.upload_key == key and query.get("sig") == [key]:
                return artifact
        raise TwirpError("unauthenticated", "unknown or unsigned blob URL")

    def _put_blob(self, artifact: StoredArtifact, query: dict[str, list[str]], data: bytes) -> None:
        comp = query.get("comp", [None])[0]
        if comp == "block":
            artifact.blocks[query["blockid"][0]] = data
        elif comp == "blocklist":
            order = re.findall(r"<(?:Latest|Committed|Uncommitted)>([^<]+)</", data.decode())
            artifact.content = b"".join(artifact.blocks[block] for block in order)
            artifact.blocks.clear()
        elif comp is None:
            artifact.content = data
        else:
            raise TwirpError("invalid_argument", f"blob operation comp={comp} is not supported")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(QuietHandler):
            def _answer(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call, status, reply, content_type = url.path, 200, b"", "application/json"
                with outer.lock:
                    try:
                        if self.command == "POST" and url.path.startswith(TWIRP_PREFIX):
                            call = url.path.removeprefix(TWIRP_PREFIX)
                            bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                            if bearer not in outer._tokens:
                                raise TwirpError(
                                    "unauthenticated", "missing or unknown ACTIONS_RUNTIME_TOKEN"
                                )
                            answer = outer._twirp(call, json.loads(data or b"{}"), outer._tokens[bearer])
                            reply = json.dumps(answer).encode()
                        elif url.path.startswith(BLOB_PREFIX) and self.command in {"PUT", "GET"}:
                            artifact = outer._blob(url.path.removeprefix(BLOB_PREFIX), query)
                            default = "download" if self.command == "GET" else "put"
                            call = f"blob {query.get('comp', [default])[0]}"
                            if self.command == "PUT":
                                outer._put_blob(artifact, query, data)
                                status = 201
                            else:
                                reply, content_type = artifact.content or b"", artifact.mime_type
                        else:
                            raise TwirpError("not_found", f"{self.command} {url.path}")
                    except TwirpError as error:
                        status = _TWIRP_STATUS[error.code]
                        reply = json.dumps({"code": error.code, "msg": error.message}).encode()
                    except Exception as error:  # a malformed request or a stand-in bug: answered and recorded
                        status = 500
                        reply = json.dumps({"code": "internal", "msg": repr(error)}).encode()
                    outer.requests.append((self.command, call, status))
                self._answer(status, reply, content_type)

            do_GET = do_POST = do_PUT = _serve

        return Handler
