"""Resolve infra/housing-mlops.yaml for given parameters, the way CloudFormation would, without AWS.

Conditions are evaluated, resources whose condition is false are dropped, and intrinsic functions (Ref, Sub,
GetAtt, If, Equals, Not, Join, Select, Split) are replaced by values. Physical names and ARNs are invented in
CloudFormation's formats (account 123456789012, region eu-west-1). Policy documents given as JSON strings are
parsed. An intrinsic this resolver does not know raises instead of passing through unresolved.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from housing.infra.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "housing-mlops.yaml"
TOOLS_BIN = ROOT / "build" / "tools" / "infra" / "bin"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
STACK = "housing-mlops"
REPO = "my-org/housing-mlops"
GITHUB_PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
BASE_PARAMETERS = {"GitHubRepository": REPO, "EksClusterName": "prod-cluster"}
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
}
_NO_VALUE = object()


def infra_tool(name: str) -> str:
    """A tool from `make infra-tools` (build/tools/infra), else PATH; skipped loudly when absent."""
    candidate = TOOLS_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"SKIPPED LOUDLY: `{name}` not found in {TOOLS_BIN} or on PATH; run `make infra-tools`")
    return found


class Stack:
    """The resources of one resolved stack: ``resources[logical_id] = {"Type": ..., "Properties": {...}}``."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.parameters = self._parameters(parameters)
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self._condition(name)
        self.active = {
            logical_id
            for logical_id, resource in template["Resources"].items()
            if self.conditions.get(resource.get("Condition", ""), True)
        }
        self.resources = {
            logical_id: {
                "Type": template["Resources"][logical_id]["Type"],
                "Properties": self.resolve(template["Resources"][logical_id].get("Properties", {})),
                "Metadata": template["Resources"][logical_id].get("Metadata", {}),
            }
            for logical_id in sorted(self.active)
        }
        self.outputs = {
            key: self.resolve(output["Value"])
            for key, output in template.get("Outputs", {}).items()
            if self.conditions.get(output.get("Condition", ""), True)
        }

    def _parameters(self, given: dict[str, str]) -> dict[str, str]:
        declared = self.template["Parameters"]
        values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
        values.update(given)
        missing = set(declared) - set(values)
        assert not missing, f"parameters without a value: {missing}"
        return values

    def _condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    # --- physical names and attributes, in CloudFormation's formats ---------------------------------------
    def physical_id(self, logical_id: str) -> str:
        resource = self.template["Resources"][logical_id]
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind == "AWS::ECR::Repository":
            return self.resolve(props["RepositoryName"])
        if kind == "AWS::IAM::Role":
            return (
                self.resolve(props["RoleName"])
                if "RoleName" in props
                else f"{STACK}-{logical_id}-ABCDEF123456"
            )
        if kind == "AWS::S3::Bucket":
            return f"{STACK}-{logical_id.lower()}-1a2b3c4d5e6f"
        if kind == "AWS::IAM::OIDCProvider":
            return self.attribute(logical_id, "Arn")
        raise NotImplementedError(f"Ref to {kind} ({logical_id})")

    def attribute(self, logical_id: str, name: str) -> str:
        assert logical_id in self.active, (
            f"GetAtt {logical_id}.{name}: resource not created (condition false)"
        )
        kind = self.template["Resources"][logical_id]["Type"]
        if name != "Arn":
            raise NotImplementedError(f"GetAtt {logical_id}.{name}")
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT}:role/{self.physical_id(logical_id)}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.physical_id(logical_id)}"
        if kind == "AWS::ECR::Repository":
            return f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{self.physical_id(logical_id)}"
        if kind == "AWS::IAM::OIDCProvider":
            url = self.resolve(self.template["Resources"][logical_id]["Properties"]["Url"])
            return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url.removeprefix('https://')}"
        raise NotImplementedError(f"GetAtt on {kind}")

    # --- intrinsic functions --------------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self.resolve(item) for item in node) if value is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            key, arg = next(iter(node.items()))
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition":
                return self._condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_id(name)

    def _function(self, key: str, arg: Any) -> Any:
        if key == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self._condition(condition) else when_false)
        args = self.resolve(arg) if key != "Fn::Sub" else arg
        if key == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if key == "Fn::Not":
            return not args[0]
        if key == "Fn::And":
            return all(args)
        if key == "Fn::Or":
            return any(args)
        if key == "Fn::GetAtt":
            return self.attribute(*args)
        if key == "Fn::Join":
            return args[0].join(str(part) for part in args[1])
        if key == "Fn::Select":
            return args[1][int(args[0])]
        if key == "Fn::Split":
            return args[1].split(args[0])
        if key == "Fn::Sub":
            return self._sub(arg)
        raise NotImplementedError(key)

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self.attribute(*name.split(".", 1))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # --- conveniences for the tests -------------------------------------------------------------------------
    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == kind}

    def trust_policy(self, role: str) -> dict[str, Any]:
        return _document(self.resources[role]["Properties"]["AssumeRolePolicyDocument"])

    def role_policies(self, role: str) -> list[dict[str, Any]]:
        return [
            _document(p["PolicyDocument"]) for p in self.resources[role]["Properties"].get("Policies", [])
        ]

    def bucket_policy(self) -> dict[str, Any]:
        (policy,) = self.of_type("AWS::S3::BucketPolicy").values()
        return _document(policy["Properties"]["PolicyDocument"])

    def arn(self, logical_id: str) -> str:
        return self.attribute(logical_id, "Arn")

    def all_policy_documents(self) -> list[tuple[str, dict[str, Any]]]:
        documents = [(f"{role} trust", self.trust_policy(role)) for role in self.of_type("AWS::IAM::Role")]
        documents += [
            (f"{role} policy", document)
            for role in self.of_type("AWS::IAM::Role")
            for document in self.role_policies(role)
        ]
        documents.append(("DataBucketPolicy", self.bucket_policy()))
        return documents


def _document(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


def resolve_stack(**parameters: str) -> Stack:
    return Stack(load_template(TEMPLATE), {**BASE_PARAMETERS, **parameters})


def describe_stacks(stack: Stack, status: str = "CREATE_COMPLETE") -> dict[str, Any]:
    """What `aws cloudformation describe-stacks --output json` returns for this resolved stack."""
    return {
        "Stacks": [
            {
                "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0f1e2d3c",
                "StackName": STACK,
                "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in stack.parameters.items()],
                "CreationTime": "2026-12-01T10:00:00.000Z",
                "StackStatus": status,
                "Outputs": [
                    {
                        "OutputKey": key,
                        "OutputValue": value,
                        "Description": stack.template["Outputs"][key]["Description"],
                    }
                    for key, value in stack.outputs.items()
                ],
                "Tags": [{"Key": "project", "Value": "housing-mlops"}],
            }
        ]
    }
