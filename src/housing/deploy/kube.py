"""Reads and merge-patches one InferenceService through the official ``kubernetes`` client.

Bodies are plain dicts (the KServe SDK's models serialise to snake_case keys with kubernetes 37).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from housing.deploy.isvc import CanaryError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
MERGE_PATCH = "application/merge-patch+json"


class InferenceServiceApi(Protocol):
    """What the canary controller needs from the cluster (tests substitute an in-memory fake)."""

    def get(self) -> dict[str, Any]: ...

    def patch(self, body: dict[str, Any]) -> dict[str, Any]: ...


class KubeInferenceService:
    """One named InferenceService in one namespace."""

    def __init__(
        self, name: str, namespace: str, *, kubeconfig: str | None = None, context: str | None = None
    ) -> None:
        from kubernetes import client, config

        self.name, self.namespace = name, namespace
        try:
            if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config()
                api_client = client.ApiClient()
            else:
                api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, OSError) as exc:
            raise CanaryError(f"Kubernetes configuration ({kubeconfig or '~/.kube/config'}): {exc}") from exc
        self._api = client.CustomObjectsApi(api_client)

    def get(self) -> dict[str, Any]:
        return self._call(
            "get",
            lambda: self._api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name),
        )

    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "patch",
            lambda: self._api.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, body, _content_type=MERGE_PATCH
            ),
        )

    def _call(self, verb: str, func: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        try:
            return func()
        except ApiException as exc:
            where = f"InferenceService {self.namespace}/{self.name}"
            if exc.status == 404:
                raise CanaryError(
                    f"{where} not found (is KServe installed and the overlay applied?)"
                ) from exc
            raise CanaryError(f"{verb} {where}: HTTP {exc.status} {exc.reason}: {exc.body!s:.300}") from exc
        except (OSError, TransportError) as exc:
            raise CanaryError(f"{verb} InferenceService: cannot reach the Kubernetes API ({exc})") from exc
