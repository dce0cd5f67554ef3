"""infra/k8s/deployer-rbac.yaml: the deploy role's Kubernetes rights cover what CD applies, nothing more."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from cfn_support import ROOT, resolve_stack
from k8s_support import K8S, OVERLAYS, render

RBAC = ROOT / "infra" / "k8s" / "deployer-rbac.yaml"
APPLY_VERBS = {"get", "create", "patch"}  # kubectl apply: read, create if absent, patch if changed
GROUP = "housing-deployer"


def bootstrap() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]


def objects(kind: str, namespace: str) -> list[dict]:
    return [
        d
        for d in bootstrap()
        if d["kind"] == kind and (d["metadata"].get("namespace") or d["metadata"]["name"]) == namespace
    ]


def plural(kind: str) -> str:
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def granted(role: dict, group: str, resource: str, name: str) -> set[str]:
    verbs: set[str] = set()
    for rule in role["rules"]:
        names = rule.get("resourceNames")
        if group in rule["apiGroups"] and resource in rule["resources"] and (not names or name in names):
            verbs |= set(rule["verbs"])
    return verbs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_role_lets_cd_apply_every_object_the_overlay_renders(overlay: str) -> None:
    namespace = f"housing-{overlay}"
    (role,) = objects("Role", namespace)
    rendered = render(K8S / "overlays" / overlay)
    for doc in rendered:
        group = doc["apiVersion"].rpartition("/")[0]
        verbs = granted(role, group, plural(doc["kind"]), doc["metadata"]["name"])
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
            assert verbs == {"get"}, "the namespace is read, never patched (pod-security labels)"
        else:
            assert doc["metadata"]["namespace"] == namespace
            assert verbs >= APPLY_VERBS, f"{doc['kind']} {doc['metadata']['name']}: only {sorted(verbs)}"
    assert granted(role, "serving.kserve.io", "inferenceservices", "housing") >= {"get", "patch"}, (
        "housing canary"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_bootstrap_namespace_is_the_rendered_one_so_apply_leaves_it_unchanged(overlay: str) -> None:
    namespace = f"housing-{overlay}"
    (rendered,) = [d for d in render(K8S / "overlays" / overlay) if d["kind"] == "Namespace"]
    (mine,) = objects("Namespace", namespace)
    assert mine == rendered


@pytest.mark.parametrize("namespace", ["housing-staging", "housing-production"])
def test_the_role_grants_no_secrets_rbac_delete_or_wildcards(namespace: str) -> None:
    (role,) = objects("Role", namespace)
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert not {"secrets", "roles", "rolebindings", "pods/exec", "pods/portforward"} & set(
            rule["resources"]
        )
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
        if "namespaces" in rule["resources"]:
            assert rule["resourceNames"] == [namespace]
            assert rule["verbs"] == ["get"]
    (binding,) = objects("RoleBinding", namespace)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}]
    assert not [d for d in bootstrap() if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_the_group_is_the_access_entrys() -> None:
    entry = resolve_stack().resources["DeployRoleAccessEntry"]["Properties"]
    assert entry["KubernetesGroups"] == [GROUP]


def test_the_manifest_validates_against_the_kubernetes_schemas() -> None:
    docs = bootstrap()
    assert [d["kind"] for d in docs] == ["Namespace", "Role", "RoleBinding"] * 2
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.utils.latest_version(), strict=True)
