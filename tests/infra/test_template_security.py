"""The security properties of infra/housing-mlops.yaml, proved on the resolved template with iam_policy.py.

Who can assume which role is decided by evaluating each trust policy against every GitHub OIDC token a
workflow could present (the `sub` claims of GitHub's default format for pull requests, branches, tags and
environments of this and look-alike repositories, with right and wrong audiences and issuers); what each
role can do by evaluating its policies, together with the bucket policy, against concrete API calls.
"""

from __future__ import annotations

import itertools
import json

import pytest
from cfn_support import GITHUB_PROVIDER_ARN, REPO, Stack, resolve_stack
from iam_policy import Request, as_list, evaluate, is_allowed, statements, wildcard_match

GITHUB = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
ROLES = ("CiRole", "DeployRole", "RetrainRole")
CONTEXTS = (
    "pull_request",
    "ref:refs/heads/main",
    "ref:refs/heads/feature/main",
    "ref:refs/heads/main-backup",
    "ref:refs/tags/v1.0.0",
    "environment:production",
    "environment:staging",
    "environment:retrain",
    "environment:Production",
    "environment:dev",
)
# The roles' intended holders, in GitHub's default claim format (ci.yml/cd.yml/retrain.yml jobs).
EXPECTED_SUBJECT_CONTEXTS = {
    "CiRole": {"pull_request", "ref:refs/heads/main"},
    "DeployRole": {"ref:refs/heads/main", "environment:production", "environment:staging"},
    "RetrainRole": {"environment:retrain"},
}
LOOKALIKE_REPOS = (
    "my-org/housing-mlops-fork",
    "my-org/housing",
    "other-org/housing-mlops",
    "MY-ORG/HOUSING-MLOPS",
)


@pytest.fixture(scope="module")
def stack() -> Stack:
    return resolve_stack()


def token(sub: str, aud: str = AUDIENCE, provider: str = GITHUB_PROVIDER_ARN) -> Request:
    return Request(
        action="sts:AssumeRoleWithWebIdentity",
        resource="role",
        principal={"Federated": provider},
        context={f"{GITHUB}:sub": sub, f"{GITHUB}:aud": aud},
    )


def assumable_contexts(stack: Stack, role: str, repo: str = REPO) -> set[str]:
    trust = stack.trust_policy(role)
    return {context for context in CONTEXTS if is_allowed([trust], token(f"repo:{repo}:{context}"))}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_trusts_exactly_its_workflow_subjects(stack: Stack, role: str) -> None:
    assert assumable_contexts(stack, role) == EXPECTED_SUBJECT_CONTEXTS[role]


def test_a_pull_request_token_cannot_assume_the_deploy_or_retrain_role(stack: Stack) -> None:
    pull_request = token(f"repo:{REPO}:pull_request")
    assert evaluate([stack.trust_policy("DeployRole")], pull_request) == "ImplicitDeny"
    assert evaluate([stack.trust_policy("RetrainRole")], pull_request) == "ImplicitDeny"
    assert is_allowed([stack.trust_policy("CiRole")], pull_request)


def test_a_main_branch_token_cannot_assume_the_retrain_role(stack: Stack) -> None:
    assert not is_allowed([stack.trust_policy("RetrainRole")], token(f"repo:{REPO}:ref:refs/heads/main"))


@pytest.mark.parametrize(("role", "repo"), list(itertools.product(ROLES, LOOKALIKE_REPOS)))
def test_no_other_repository_can_assume_a_role(stack: Stack, role: str, repo: str) -> None:
    assert assumable_contexts(stack, role, repo) == set()


@pytest.mark.parametrize("role", ROLES)
def test_audience_and_issuer_are_pinned(stack: Stack, role: str) -> None:
    trust = stack.trust_policy(role)
    sub = f"repo:{REPO}:{sorted(EXPECTED_SUBJECT_CONTEXTS[role])[0]}"
    assert is_allowed([trust], token(sub))
    # GitHub's default audience when none is requested is the owner's URL: refused.
    assert not is_allowed([trust], token(sub, aud="https://github.com/my-org"))
    no_audience = Request(
        "sts:AssumeRoleWithWebIdentity", "role", {"Federated": GITHUB_PROVIDER_ARN}, {f"{GITHUB}:sub": sub}
    )
    assert not is_allowed([trust], no_audience)
    other_issuer = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    assert not is_allowed([trust], token(sub, provider=other_issuer))
    assert not is_allowed(
        [trust], Request("sts:AssumeRole", "role", {"AWS": "arn:aws:iam::123456789012:root"})
    )


@pytest.mark.parametrize("role", ROLES)
def test_trust_conditions_are_exact_strings_without_wildcards(stack: Stack, role: str) -> None:
    for statement in statements(stack.trust_policy(role)):
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert set(statement["Condition"]) == {"StringEquals"}, "no StringLike or set operators on claims"
        claims = statement["Condition"]["StringEquals"]
        assert claims[f"{GITHUB}:aud"] == AUDIENCE
        for sub in as_list(claims[f"{GITHUB}:sub"]):
            assert "*" not in sub, sub
            assert "?" not in sub, sub
            assert sub.startswith(f"repo:{REPO}:")


def test_the_immutable_subject_format_replaces_the_name_format() -> None:
    immutable = "my-org@123456/housing-mlops@456789"
    stack = resolve_stack(GitHubSubjectRepository=immutable)
    for role in ROLES:
        assert assumable_contexts(stack, role, immutable) == EXPECTED_SUBJECT_CONTEXTS[role]
        assert assumable_contexts(stack, role, REPO) == set()


def test_an_existing_oidc_provider_is_referenced_not_created() -> None:
    stack = resolve_stack(CreateGitHubOidcProvider="false")
    assert "GitHubOidcProvider" not in stack.resources
    for role in ROLES:
        (statement,) = statements(stack.trust_policy(role))
        assert statement["Principal"] == {"Federated": GITHUB_PROVIDER_ARN}
    created = resolve_stack()
    provider = created.resources["GitHubOidcProvider"]["Properties"]
    assert provider["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["ClientIdList"] == [AUDIENCE]
    assert created.arn("GitHubOidcProvider") == GITHUB_PROVIDER_ARN


# --- what the roles can do ----------------------------------------------------------------------------------
def can(stack: Stack, role: str, action: str, resource: str, **context: str) -> bool:
    secure = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3", **context}
    policies = stack.role_policies(role)
    if action.startswith("s3:"):
        policies = [*policies, stack.bucket_policy()]
    return is_allowed(policies, Request(action, resource, {"AWS": stack.arn(role)}, secure))


def bucket(stack: Stack) -> str:
    return stack.arn("DataBucket")


S3_WRITES = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectAcl",
    "s3:RestoreObject",
)
S3_BUCKET_WRITES = (
    "s3:PutBucketPolicy",
    "s3:DeleteBucket",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
)
ECR_PUSH = ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload")
PREFIXES = ("dvc/", "mlflow/", "inference-log/production/", "inference-log/staging/", "")


def test_the_ci_role_only_reads_the_dvc_remote(stack: Stack) -> None:
    data = bucket(stack)
    assert can(stack, "CiRole", "s3:GetObject", f"{data}/dvc/files/md5/ab/cdef")
    assert can(stack, "CiRole", "s3:ListBucket", data, **{"s3:prefix": "dvc/files/md5/ab/"})
    assert not can(stack, "CiRole", "s3:ListBucket", data), "listing the whole bucket"
    assert not can(stack, "CiRole", "s3:ListBucket", data, **{"s3:prefix": "inference-log/"})
    assert not can(stack, "CiRole", "s3:GetObject", f"{data}/inference-log/production/x.jsonl")
    assert not can(stack, "CiRole", "s3:GetObject", f"{data}/mlflow/1/artifacts/model.onnx")
    for action, prefix in itertools.product(S3_WRITES, PREFIXES):
        assert not can(stack, "CiRole", action, f"{data}/{prefix}key"), (action, prefix)
    for action in S3_BUCKET_WRITES:
        assert not can(stack, "CiRole", action, data), action


def test_the_ci_role_is_read_only_by_construction(stack: Stack) -> None:
    """Every action any of its statements allows is a read or a list (no write verb anywhere)."""
    read_verbs = ("Get", "List", "Describe", "BatchGet", "Head")
    for document in stack.role_policies("CiRole"):
        for statement in statements(document):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert action.split(":", 1)[1].startswith(read_verbs), action


def test_the_deploy_role_cannot_touch_s3_and_pushes_only_to_its_repository(stack: Stack) -> None:
    data, repository = bucket(stack), stack.arn("EcrRepository")
    for action, prefix in itertools.product((*S3_WRITES, "s3:GetObject"), PREFIXES):
        assert not can(stack, "DeployRole", action, f"{data}/{prefix}key"), (action, prefix)
    for action in (*S3_BUCKET_WRITES, "s3:ListBucket"):
        assert not can(stack, "DeployRole", action, data), action
    for document in stack.role_policies("DeployRole"):
        for statement in statements(document):
            for action in as_list(statement["Action"]):
                assert not wildcard_match(action, "s3:AnyAction", ignore_case=True), action
                assert not action.lower().startswith("s3:"), action
    for action in (*ECR_PUSH, "ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability"):
        assert can(stack, "DeployRole", action, repository), action
        other = repository.replace("repository/housing-mlops", "repository/someone-else")
        assert not can(stack, "DeployRole", action, other), action
    assert can(stack, "DeployRole", "ecr:GetAuthorizationToken", "*")
    for action in (
        "ecr:DeleteRepository",
        "ecr:BatchDeleteImage",
        "ecr:SetRepositoryPolicy",
        "ecr:PutLifecyclePolicy",
    ):
        assert not can(stack, "DeployRole", action, repository), action
    cluster = "arn:aws:eks:eu-west-1:123456789012:cluster/prod-cluster"
    assert can(stack, "DeployRole", "eks:DescribeCluster", cluster)
    assert not can(stack, "DeployRole", "eks:DescribeCluster", cluster.replace("prod-cluster", "other"))
    for action in ("eks:UpdateClusterConfig", "eks:CreateAccessEntry", "eks:AssociateAccessPolicy"):
        assert not can(stack, "DeployRole", action, cluster), action


def test_the_retrain_role_reads_and_writes_the_remote_reads_the_log_and_cannot_push_images(
    stack: Stack,
) -> None:
    data = bucket(stack)
    for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
        assert can(stack, "RetrainRole", action, f"{data}/dvc/files/md5/ab/cdef"), action
    assert can(stack, "RetrainRole", "s3:GetObject", f"{data}/inference-log/production/2026/12/01.jsonl")
    assert can(stack, "RetrainRole", "s3:ListBucket", data, **{"s3:prefix": "inference-log/production/"})
    assert not can(stack, "RetrainRole", "s3:PutObject", f"{data}/inference-log/production/forged.jsonl")
    assert not can(stack, "RetrainRole", "s3:DeleteObject", f"{data}/dvc/files/md5/ab/cdef")
    assert not can(stack, "RetrainRole", "s3:PutObject", f"{data}/mlflow/x")
    repository = stack.arn("EcrRepository")
    for action in (*ECR_PUSH, "ecr:GetAuthorizationToken"):
        assert not can(stack, "RetrainRole", action, repository), action
        assert not can(stack, "RetrainRole", action, "*"), action
    assert not can(
        stack, "RetrainRole", "eks:DescribeCluster", "arn:aws:eks:eu-west-1:123456789012:cluster/prod-cluster"
    )


def test_nothing_grants_star_on_star_and_star_resources_only_where_the_api_requires() -> None:
    stack = resolve_stack(EksOidcIssuer="oidc.eks.eu-west-1.amazonaws.com/id/ABC123")
    for where, document in stack.all_policy_documents():
        for statement in statements(document):
            if statement["Effect"] != "Allow":
                continue
            assert "NotAction" not in statement, where
            assert "NotResource" not in statement, where
            actions = as_list(statement["Action"])
            assert all("*" not in action for action in actions), f"{where}: wildcard action in {actions}"
            if "*" in as_list(statement.get("Resource", [])):
                assert actions == ["ecr:GetAuthorizationToken"], f"{where}: Resource * for {actions}"
    for role in stack.of_type("AWS::IAM::Role"):
        for action in ("iam:PassRole", "iam:CreateRole", "sts:AssumeRole", "s3:DeleteBucket", "kms:Decrypt"):
            assert evaluate(stack.role_policies(role), Request(action, "*")) == "ImplicitDeny", (role, action)


def test_the_bucket_denies_plain_http_and_old_tls_to_everyone(stack: Stack) -> None:
    data = bucket(stack)
    policies = [*stack.role_policies("RetrainRole"), stack.bucket_policy()]
    principal = {"AWS": stack.arn("RetrainRole")}

    def decide(**context: str) -> str:
        return evaluate(policies, Request("s3:GetObject", f"{data}/dvc/x", principal, context))

    assert decide(**{"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}) == "Allow"
    assert decide(**{"aws:SecureTransport": "false"}) == "ExplicitDeny"
    assert decide(**{"aws:SecureTransport": "true", "s3:TlsVersion": "1.1"}) == "ExplicitDeny"
    bucket_only = [stack.bucket_policy()]
    for target in (data, f"{data}/any/key"):
        anyone = Request(
            "s3:ListBucket",
            target,
            {"AWS": "arn:aws:iam::999999999999:root"},
            {"aws:SecureTransport": "false"},
        )
        assert evaluate(bucket_only, anyone) == "ExplicitDeny", target
    assert all(s["Effect"] == "Deny" for s in statements(stack.bucket_policy())), (
        "the bucket policy grants nothing"
    )


def test_the_bucket_is_private_versioned_encrypted_and_expires_old_versions(stack: Stack) -> None:
    props = stack.resources["DataBucket"]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == "90"


def test_ecr_is_immutable_scanned_on_push_and_expires_untagged_images() -> None:
    stack = resolve_stack(UntaggedImageExpiryDays="7")
    props = stack.resources["EcrRepository"]["Properties"]
    # every tag immutable except `latest` (exactly that tag, no wildcard pattern that git shas could match)
    assert props["ImageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert props["ImageTagMutabilityExclusionFilters"] == [
        {
            "ImageTagMutabilityExclusionFilterType": "WILDCARD",
            "ImageTagMutabilityExclusionFilterValue": "latest",
        }
    ]
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    (rule,) = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rule["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 7,
    }
    assert rule["action"] == {"type": "expire"}
    assert stack.template["Resources"]["EcrRepository"]["DeletionPolicy"] == "Retain"
    assert stack.template["Resources"]["DataBucket"]["DeletionPolicy"] == "Retain"


def test_model_roles_exist_only_with_an_issuer_and_trust_only_their_service_account() -> None:
    assert not resolve_stack().of_type("AWS::IAM::Role").keys() & {"ModelRoleStaging", "ModelRoleProduction"}
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
    stack = resolve_stack(EksOidcIssuer=issuer)
    provider = f"arn:aws:iam::123456789012:oidc-provider/{issuer}"
    data = bucket(stack)
    for env in ("staging", "production"):
        role = f"ModelRole{env.title()}"
        assert stack.resources[role]["Properties"]["RoleName"] == f"housing-model-{env}", (
            "k8s/overlays name it"
        )
        trust = stack.trust_policy(role)

        def assume(
            namespace: str, account: str = "housing-model", aud: str = AUDIENCE, trust: dict = trust
        ) -> bool:
            context = {f"{issuer}:sub": f"system:serviceaccount:{namespace}:{account}", f"{issuer}:aud": aud}
            return is_allowed(
                [trust], Request("sts:AssumeRoleWithWebIdentity", "role", {"Federated": provider}, context)
            )

        other = "staging" if env == "production" else "production"
        assert assume(f"housing-{env}")
        assert not assume(f"housing-{other}")
        assert not assume(f"housing-{env}", account="housing-retrain-trigger")
        assert not assume(f"housing-{env}", aud="https://kubernetes.default.svc")
        assert not is_allowed([trust], token(f"repo:{REPO}:ref:refs/heads/main")), "no GitHub token"
        assert can(stack, role, "s3:PutObject", f"{data}/inference-log/{env}/pod-1/0001.jsonl")
        assert not can(stack, role, "s3:PutObject", f"{data}/inference-log/{other}/pod-1/0001.jsonl")
        assert not can(stack, role, "s3:GetObject", f"{data}/inference-log/{env}/pod-1/0001.jsonl")
        assert not can(stack, role, "s3:PutObject", f"{data}/dvc/files/md5/ab/cdef")


def test_the_deploy_role_reaches_kubernetes_only_through_the_housing_deployer_group(stack: Stack) -> None:
    entry = stack.resources["DeployRoleAccessEntry"]["Properties"]
    assert entry["PrincipalArn"] == stack.arn("DeployRole")
    assert entry["ClusterName"] == "prod-cluster"
    assert entry["Type"] == "STANDARD"
    assert entry["KubernetesGroups"] == ["housing-deployer"]
    assert "AccessPolicies" not in entry, (
        "no EKS access policy: RBAC in infra/k8s/deployer-rbac.yaml scopes it"
    )
    assert len(stack.of_type("AWS::EKS::AccessEntry")) == 1
