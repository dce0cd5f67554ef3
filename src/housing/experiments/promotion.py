"""Apply a ``challenger_wins`` A/B verdict: move MLflow's @champion alias, print the k8s rollout change."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.experiments.verdict import AbTestError, AbVerdict, Verdict, read_verdict
from housing.strict import Strict

if TYPE_CHECKING:
    from housing.config import RegisterParams

IMAGE_NAME = "housing-model"  # the image name kustomize `images:` rewrites (k8s/base/kustomization.yaml)
ISVC_NAME = "housing"  # k8s/base/inferenceservice.yaml
CONTAINER_INDEX = 0


def _overlay_settings(overlay: Path) -> tuple[str, str | None]:
    """(image repository, namespace) declared by a kustomize overlay; defaults when it does not say."""
    import yaml

    path = overlay / "kustomization.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise AbTestError(f"{path}: kustomization not found (pass --overlay k8s/overlays/<env>)") from None
    except yaml.YAMLError as exc:
        raise AbTestError(f"{path}: not valid YAML ({exc})") from None
    repository = IMAGE_NAME
    for image in data.get("images") or []:
        if isinstance(image, dict) and image.get("name") == IMAGE_NAME:
            repository = image.get("newName") or IMAGE_NAME
    return repository, data.get("namespace")


def rollout_instructions(overlay: Path, image: str | None, model_version: str) -> str:
    """The k8s change that rolls the new champion out, as shell commands to review and run (printed only).

    Without ``image`` the commands use ``$IMAGE``: CD tags images with the git sha of the commit whose
    dvc.lock pins the model (cd.yml), which this command cannot know.
    """
    repository, namespace = _overlay_settings(overlay)
    ns = f"-n {shlex.quote(namespace)} " if namespace else ""
    lines = [f"# Roll the new champion out: the image must bake model version {model_version}."]
    if image is None:
        # Runnable as printed once GIT_SHA is set; the shell names what is missing otherwise.
        lines.append(
            f'IMAGE="{repository}:${{GIT_SHA:?git sha of the commit whose dvc.lock pins {model_version}}}"'
        )
        ref, value = '"$IMAGE"', "$IMAGE"
    else:
        ref, value = shlex.quote(image), image
    patch = json.dumps(
        [{"op": "replace", "path": f"/spec/predictor/containers/{CONTAINER_INDEX}/image", "value": value}]
    )
    patch_arg = f'"{patch.replace(chr(34), chr(92) + chr(34))}"' if image is None else shlex.quote(patch)
    lines += [
        "# 1. GitOps: pin the image in the overlay and commit the change",
        f"(cd {shlex.quote(str(overlay))} && kustomize edit set image {IMAGE_NAME}={ref})",
        "# 2. Progressive rollout with Prometheus analysis and automatic rollback (docs/kubernetes.md)",
        f'housing canary --image {ref} {ns}--prometheus-url "$PROMETHEUS_URL"',
        "# or, without the canary controller, the equivalent InferenceService JSON patch:",
        f"kubectl {ns}patch inferenceservice {ISVC_NAME} --type json -p {patch_arg}",
    ]
    return "\n".join(lines)


class PromotionResult(Strict):
    verdict: Verdict
    model_version: str  # the challenger's, as the verdict's log recorded it
    dry_run: bool
    registry: dict[str, Any] | None = None  # housing.registry.promote's decision (None on a dry run)
    rollout: str  # the k8s change to review and run


def require_challenger_wins(verdict: AbVerdict, source: Path) -> None:
    if verdict.verdict is not Verdict.CHALLENGER_WINS:
        raise AbTestError(
            f"{source}: verdict is {verdict.verdict.value!r} ({verdict.reason}); "
            f"promote applies only a {Verdict.CHALLENGER_WINS.value!r} verdict, nothing was changed"
        )


def promote_verdict(
    verdict_path: Path,
    register_params: RegisterParams,
    *,
    overlay: Path,
    image: str | None = None,
    dry_run: bool = False,
) -> PromotionResult:
    """`apply_verdict` on the verdict file ``verdict_path`` (what `housing abtest promote` reads)."""
    verdict = read_verdict(verdict_path)
    return apply_verdict(
        verdict, verdict_path, register_params, overlay=overlay, image=image, dry_run=dry_run
    )


def apply_verdict(
    verdict: AbVerdict,
    source: Path,
    register_params: RegisterParams,
    *,
    overlay: Path,
    image: str | None = None,
    dry_run: bool = False,
) -> PromotionResult:
    """Check the verdict, move @champion to the tested challenger, and return the rollout instructions.

    ``force=True`` skips the registry's offline rule (at least as good on the same holdout): a
    ``challenger_wins`` verdict is stronger evidence (live traffic, ground truth, a significance test), and a
    challenger retrained on new data has a different holdout by design.
    """
    require_challenger_wins(verdict, source)
    model_version = verdict.challenger_version(source)
    registry = None
    if not dry_run:
        from housing.registry import promote, version_by_model_version

        version = version_by_model_version(register_params, model_version)
        registry = promote(register_params, version=version, force=True)
    return PromotionResult(
        verdict=verdict.verdict,
        model_version=model_version,
        dry_run=dry_run,
        registry=registry,
        rollout=rollout_instructions(overlay, image, model_version),
    )
