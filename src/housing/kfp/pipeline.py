"""The Kubeflow pipeline: the graph of the stage components, and its compilation to KFP's IR YAML.

One pipeline, the seed lab's control flow: data in through importers, validate, split, drift; then only when
the drift stage recommends retraining (``drift_score >= drift.threshold``) or ``force`` is set: train, export,
evaluate (a missed gate fails the run) and register (``@challenger`` in the MLflow store it is given).
``force=true`` is the whole of ``dvc repro``. Nothing deploys: a merge does (docs/kfp.md).
"""

# No `from __future__ import annotations`: kfp reads the pipeline function's annotations as objects.
import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.config import Params
from housing.kfp.params import section_defaults

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent

PIPELINE_NAME = "housing"
DEFAULT_PACKAGE = Path("kfp/housing_pipeline.yaml")
# The committed IR names this image; CD compiles with --image <registry>/<repository>@sha256:<digest> of the
# `train` target it pushed (docs/kfp.md), and `housing kfp submit` refuses a package that still names it.
IMAGE_PLACEHOLDER = "housing-mlops-train:set-by-cd"
# Runtime parameters the pipeline has besides the params.yaml sections.
RUN_PARAMETERS = ("raw_data_uri", "production_window_uri", "mlflow_tracking_uri", "force")


def build_pipeline(params: Params, image: str = IMAGE_PLACEHOLDER) -> "GraphComponent":
    """The pipeline, its section parameters defaulting to ``params`` (already validated)."""
    from kfp import dsl

    from housing.kfp.components import make_components

    ops = make_components(image)
    defaults = section_defaults(params)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="California housing: validate, split and drift; retrain, evaluate (gates) and register "
        "@challenger when the drift stage recommends it or force is set.",
    )
    def housing(
        raw_data_uri: str,
        production_window_uri: str,
        mlflow_tracking_uri: str,
        force: bool = False,
        data: dict = defaults["data"],
        validate: dict = defaults["validate"],
        split: dict = defaults["split"],
        train: dict = defaults["train"],
        export: dict = defaults["export"],
        evaluate: dict = defaults["evaluate"],
        drift: dict = defaults["drift"],
        register: dict = defaults["register"],
    ):
        config = ops.config(
            data=data,
            validate=validate,
            split=split,
            train=train,
            export=export,
            evaluate=evaluate,
            drift=drift,
            register=register,
        )
        params_doc = config.output
        raw = dsl.importer(artifact_uri=raw_data_uri, artifact_class=dsl.Dataset)
        window = dsl.importer(artifact_uri=production_window_uri, artifact_class=dsl.Dataset)
        validated = ops.validate(params=params_doc, raw_data=raw.output)
        splits = ops.split(
            params=params_doc,
            raw_data=raw.output,
            production_window=window.output,
            validation=validated.outputs["validation"],
        )
        drifted = ops.drift(
            params=params_doc, reference=splits.outputs["reference"], production_window=window.output
        )
        decision = ops.retrain_decision(
            retrain_recommended=drifted.outputs["retrain_recommended"], force=force
        )
        # KFP turns the comparison into the branch's condition: `is True` would be evaluated here instead.
        with dsl.If(decision.output == True, name="retrain"):  # noqa: E712
            trained = ops.train(params=params_doc, train_split=splits.outputs["train_split"])
            exported = ops.export(
                params=params_doc,
                model=trained.outputs["model"],
                train_split=splits.outputs["train_split"],
                test_split=splits.outputs["test_split"],
            )
            evaluated = ops.evaluate(
                params=params_doc,
                onnx_model=exported.outputs["onnx_model"],
                test_split=splits.outputs["test_split"],
            )
            registered = ops.register(
                params=params_doc,
                onnx_model=exported.outputs["onnx_model"],
                model=trained.outputs["model"],
                test_split=splits.outputs["test_split"],
                evaluation=evaluated.outputs["evaluation"],
                validation=validated.outputs["validation"],
                drift_json=drifted.outputs["drift_json"],
                drift_report=drifted.outputs["drift_report"],
                mlflow_tracking_uri=mlflow_tracking_uri,
            )
            # A registration is a side effect on the tracking server: never replay it from KFP's cache.
            registered.set_caching_options(False)

    return housing


def compile_pipeline(params: Params, output: Path, image: str = IMAGE_PLACEHOLDER) -> Path:
    """Write the pipeline's IR YAML to ``output``: the same params and image give the same bytes."""
    from kfp import compiler

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(params, image), package_path=str(output))
    output.write_text(_sorted_header_defaults(output.read_text()))
    return output


# kfp's header comment lists each input's default; struct and list defaults come out in the iteration order of
# protobuf's maps, which changes from one process to the next (the YAML body below is sorted).
_DEFAULT_COMMENT = re.compile(r"^(#    \w+: (?:dict|list) \[Default: )(.*)\]$")


def _sorted_header_defaults(text: str) -> str:
    """The compiled YAML with the header's struct defaults in sorted key order (kfp's format otherwise)."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.startswith("#"):
            break
        match = _DEFAULT_COMMENT.match(line)
        if match:
            lines[index] = f"{match[1]}{_sort_keys(ast.literal_eval(match[2]))!r}]"
    return "\n".join(lines)


def _sort_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sort_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sort_keys(item) for item in value]
    return value
