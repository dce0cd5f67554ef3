"""Every overlay renders; every object validates (built-ins: kubernetes-validate, CRDs: JSON schemas);
the properties the issue asks for hold in the rendered output."""

from __future__ import annotations

import copy
import json
import shutil

import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s_support import K8S, MONITORING, OVERLAYS, find, render

from housing.deploy.analysis import REVISION_LABEL

CRD_GROUPS = ("serving.kserve.io", "monitoring.coreos.com")
PLACEHOLDER_IMAGE = "housing-model"


def crd_schema(schemas_dir, doc):
    group, version = doc["apiVersion"].split("/")
    return json.loads((schemas_dir / group / f"{doc['kind'].lower()}_{version}.json").read_text())


def validate(doc, schemas_dir):
    if doc["apiVersion"].split("/")[0] in CRD_GROUPS:
        # No check_schema(): the PrometheusRule schema carries Go regexes ("^(?i)...") Python rejects as
        # patterns; they only matter for fields we do not set.
        schema = crd_schema(schemas_dir, doc)
        jsonschema.validators.validator_for(schema)(schema).validate(doc)
    else:
        kubernetes_validate.validate(doc, kubernetes_validate.utils.latest_version(), strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(rendered, schemas_dir, overlay):
    docs = rendered[overlay]
    kinds = sorted(d["kind"] for d in docs)
    assert {
        "InferenceService",
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
        "Namespace",
        "NetworkPolicy",
    } <= set(kinds)
    for doc in docs:
        validate(doc, schemas_dir)


def test_the_validators_catch_mistakes(rendered, schemas_dir):
    isvc = copy.deepcopy(find(rendered["production"], "InferenceService"))
    isvc["spec"]["predictor"]["minReplica"] = 2  # typo
    with pytest.raises(jsonschema.ValidationError):
        validate(isvc, schemas_dir)
    deployment = copy.deepcopy(find(rendered["production"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, schemas_dir)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_and_image_come_from_the_overlay(rendered, overlay):
    docs = rendered[overlay]
    namespace = f"housing-{overlay}"
    assert find(docs, "Namespace")["metadata"]["name"] == namespace
    assert all(d["metadata"]["namespace"] == namespace for d in docs if d["kind"] != "Namespace")
    isvc_image = find(docs, "InferenceService")["spec"]["predictor"]["containers"][0]["image"]
    trigger_image = find(docs, "Deployment", "housing-retrain-trigger")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert isvc_image == trigger_image
    assert not isvc_image.startswith(PLACEHOLDER_IMAGE)
    assert ".dkr.ecr." in isvc_image


def test_kustomize_edit_set_image_reaches_both_workloads(tmp_path):
    """What CD does (`kustomize edit set image housing-model=...`), applied to a copy of the tree."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    kustomization = tree / "overlays/production/kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    data["images"] = [
        {
            "name": PLACEHOLDER_IMAGE,
            "newName": "1234.dkr.ecr.eu-west-1.amazonaws.com/housing",
            "newTag": "sha-0123456789ab",
        }
    ]
    kustomization.write_text(yaml.safe_dump(data))
    docs = render(tree / "overlays/production")
    images = {c["image"] for d in docs for c in _containers(d)}
    assert images == {"1234.dkr.ecr.eu-west-1.amazonaws.com/housing:sha-0123456789ab"}


def _pod_spec(doc):
    if doc["kind"] == "InferenceService":
        return doc["spec"]["predictor"]
    if doc["kind"] == "Deployment":
        return doc["spec"]["template"]["spec"]
    return None


def _containers(doc):
    spec = _pod_spec(doc)
    return [] if spec is None else spec.get("containers", [])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_profile(rendered, overlay):
    docs = rendered[overlay]
    namespace = find(docs, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    workloads = [d for d in docs if _pod_spec(d) is not None]
    assert len(workloads) == 2
    for doc in workloads:
        pod = _pod_spec(doc)
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            ctx = container["securityContext"]
            merged = pod.get("securityContext", {}) | ctx
            assert merged["runAsNonRoot"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert merged["seccompProfile"]["type"] == "RuntimeDefault"
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inference_service_is_a_serverless_custom_predictor(rendered, overlay):
    docs = rendered[overlay]
    isvc = find(docs, "InferenceService", "housing")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    predictor = isvc["spec"]["predictor"]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    if overlay == "production":
        assert predictor["minReplicas"] >= 2
    assert "canaryTrafficPercent" not in predictor  # `housing canary` owns that field
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert container["command"][:2] == ["housing", "serve"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in predictor["volumes"]}
    log_volume = volumes[mounts[env["HOUSING_INFERENCE_LOG_DIR"]]]
    assert "emptyDir" in log_volume
    assert log_volume["emptyDir"]["sizeLimit"]
    account = find(docs, "ServiceAccount", predictor["serviceAccountName"])
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert overlay in account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_retrain_trigger_is_wired_to_its_secret_and_service(rendered, overlay):
    docs = rendered[overlay]
    deployment = find(docs, "Deployment", "housing-retrain-trigger")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:2] == ["housing", "retrain-trigger"]
    env = {e["name"]: e for e in container["env"]}
    for name, key in (("HOUSING_RETRAIN_WEBHOOK_TOKEN", "webhook-token"), ("GITHUB_TOKEN", "github-token")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "housing-retrain-trigger", "key": key}
    assert "/" in env["HOUSING_GITHUB_REPOSITORY"]["value"]
    assert ("HOUSING_RETRAIN_DRY_RUN" in env) == (overlay == "staging")
    service = find(docs, "Service", "housing-retrain-trigger")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert not any(d["kind"] == "Secret" for d in docs)  # tokens never live in git


def test_secret_example_matches_what_the_deployment_reads():
    example = yaml.safe_load((K8S / "base/retrain-trigger-secret.example.yaml").read_text())
    assert example["metadata"]["name"] == "housing-retrain-trigger"
    assert set(example["stringData"]) == {"webhook-token", "github-token"}


def test_pod_monitor_labels_series_with_the_revision_the_canary_queries(rendered):
    docs = rendered["production"]
    monitor = find(docs, "PodMonitor")
    isvc = find(docs, "InferenceService")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]
    }
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "user-port"
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets[REVISION_LABEL] == ["__meta_kubernetes_pod_label_serving_knative_dev_revision"]


def test_dashboard_config_map_carries_the_dashboard_json(rendered):
    config_map = find(rendered["production"], "ConfigMap", "housing-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["housing-model.json"])
    assert shipped == json.loads((MONITORING / "dashboards/housing-model.json").read_text())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_feedback_secret_is_mounted_where_the_server_reads_its_files(rendered, overlay):
    from housing.serving.settings import ServeSettings

    predictor = find(rendered[overlay], "InferenceService", "housing")["spec"]["predictor"]
    (container,) = predictor["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in predictor["volumes"]}
    example = yaml.safe_load((K8S / "base/feedback-secret.example.yaml").read_text())
    for field in ("feedback_token_file", "feedback_signing_key_file"):
        assert field in ServeSettings.model_fields
        path = env[f"HOUSING_{field.upper()}"]
        directory, file_name = path.rsplit("/", 1)
        (mount,) = [m for m in mounts.values() if m["mountPath"] == directory]
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == example["metadata"]["name"] == "housing-feedback"
        (item,) = [i for i in secret["items"] if i["path"] == file_name]
        assert item["key"] in example["stringData"]
    assert secret["defaultMode"] == 0o440
    assert not any("FEEDBACK_TOKEN" in e["name"] and "value" not in e for e in container["env"])
    assert not any(d["kind"] == "Secret" for d in rendered[overlay])  # tokens never live in git
