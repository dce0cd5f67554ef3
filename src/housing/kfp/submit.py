"""``housing kfp submit``: the compiled pipeline sent to a Kubeflow Pipelines API with ``kfp.Client``.

The package is uploaded as a pipeline version named after its content (re-submitting the same bytes reuses the
version), then either one run starts or the weekly recurring run replaces the previous one of the same name:
the schedule ``retrain.yml`` uses, so the KFP path and the GitHub path check drift at the same time.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

from housing.kfp.package import KfpError, PipelinePackage, require_built_image, require_kfp
from housing.strict import Strict

RETRAIN_CRON = "17 5 * * 1"  # .github/workflows/retrain.yml's schedule (tests/kfp checks that they agree)
DEFAULT_EXPERIMENT = "housing"


def kfp_cron(cron: str) -> str:
    """KFP's scheduler reads six cron fields, seconds first; GitHub's five-field cron runs at second 0."""
    return f"0 {cron}"


class SubmitResult(Strict):
    host: str
    pipeline_id: str
    version_id: str
    version_name: str
    experiment_id: str
    run_id: str | None = None
    recurring_run_id: str | None = None
    replaced_recurring_runs: tuple[str, ...] = ()


def _by_display_name(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def submit(
    package: PipelinePackage,
    arguments: dict[str, Any],
    *,
    host: str,
    run_name: str,
    experiment: str = DEFAULT_EXPERIMENT,
    recurring: bool = False,
    namespace: str | None = None,
    token: str | None = None,
) -> SubmitResult:
    """Upload ``package`` (a version per content), then start a run or (``recurring``) the weekly schedule."""
    require_built_image(package)
    require_kfp()
    import kfp

    api_errors = kfp_api_errors()
    try:
        with warnings.catch_warnings():
            # "only works with Kubeflow Pipelines v2.0.0-beta.2 and later", on every construction
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(
                host=host, existing_token=token, **({"namespace": namespace} if namespace else {})
            )
        pipeline_id, version_id, version_name = _upload(client, package, namespace)
        experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
        result = SubmitResult(
            host=host,
            pipeline_id=pipeline_id,
            version_id=version_id,
            version_name=version_name,
            experiment_id=experiment_id,
        )
        source = {"params": arguments, "pipeline_id": pipeline_id, "version_id": version_id}
        if not recurring:
            run = client.run_pipeline(experiment_id, run_name, **source)
            return result.model_copy(update={"run_id": run.run_id})
        previous = client.list_recurring_runs(experiment_id=experiment_id, filter=_by_display_name(run_name))
        replaced = tuple(job.recurring_run_id for job in previous.recurring_runs or ())
        for job_id in replaced:
            client.delete_recurring_run(job_id)
        job = client.create_recurring_run(
            experiment_id,
            run_name,
            description=f"weekly drift check and retraining ({RETRAIN_CRON} UTC, as retrain.yml)",
            cron_expression=kfp_cron(RETRAIN_CRON),
            max_concurrency=1,
            no_catchup=True,
            **source,
        )
    except api_errors as exc:
        raise KfpError(f"{host}: the submission to the KFP API failed: {_reason(exc)}") from None
    return result.model_copy(
        update={"recurring_run_id": job.recurring_run_id, "replaced_recurring_runs": replaced}
    )


def _upload(client: Any, package: PipelinePackage, namespace: str | None) -> tuple[str, str, str]:
    """(pipeline id, version id, version name): the pipeline is created on first upload; its versions are
    named after the package's content, so the same bytes are uploaded once."""
    version_name = f"{package.name}-{hashlib.sha256(package.path.read_bytes()).hexdigest()[:12]}"
    pipeline_id = client.get_pipeline_id(package.name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(
            str(package.path), pipeline_name=package.name, namespace=namespace
        ).pipeline_id
    versions = client.list_pipeline_versions(pipeline_id, filter=_by_display_name(version_name))
    if versions.pipeline_versions:
        return pipeline_id, versions.pipeline_versions[0].pipeline_version_id, version_name
    uploaded = client.upload_pipeline_version(str(package.path), version_name, pipeline_id=pipeline_id)
    return pipeline_id, uploaded.pipeline_version_id, version_name


def kfp_api_errors() -> tuple[type[Exception], ...]:
    """What ``kfp.Client`` raises for an HTTP error or an unreachable host."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    return (ApiException, urllib3.exceptions.HTTPError)


def _reason(exc: Exception) -> str:
    status, body = getattr(exc, "status", None), getattr(exc, "body", None)
    if status is None:
        return str(exc).splitlines()[0]
    return f"HTTP {status}: {str(body or '').strip()[:300]}"
