"""The pipeline's components: lightweight KFP components, one per stage, each calling ``housing.kfp.steps``.

kfp embeds each function's source in the compiled pipeline and runs it in the component image, where the
project is installed (the Dockerfile's ``train`` target): the bodies only import and call, so the IR changes
only when a signature does. kfp reads the annotations as objects: no ``from __future__ import annotations``.
"""

from types import SimpleNamespace
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output


def config(
    data: dict,
    validate: dict,
    split: dict,
    train: dict,
    export: dict,
    evaluate: dict,
    drift: dict,
    register: dict,
) -> dict:
    """Validate the params.yaml sections with housing.config.Params; a bad value fails here naming its key."""
    from housing.kfp.steps import resolve_params

    sections = {
        "data": data,
        "validate": validate,
        "split": split,
        "train": train,
        "export": export,
        "evaluate": evaluate,
        "drift": drift,
        "register": register,
    }
    return resolve_params(sections)


def validate(params: dict, raw_data: Input[Dataset], validation: Output[Artifact]):
    """validate stage: schema, ranges, missing values, duplicates, outliers of the raw data set."""
    from housing.kfp import steps

    steps.validate(params, raw_data, validation)


def split(
    params: dict,
    raw_data: Input[Dataset],
    production_window: Input[Dataset],
    validation: Input[Artifact],
    train_split: Output[Dataset],
    test_split: Output[Dataset],
    reference: Output[Dataset],
):
    """split stage: seeded train/test split (plus labelled new window rows) and the drift reference sample."""
    from housing.kfp import steps

    steps.split(params, raw_data, production_window, validation, train_split, test_split, reference)


def drift(
    params: dict,
    reference: Input[Dataset],
    production_window: Input[Dataset],
    drift_metrics: Output[Metrics],
    drift_report: Output[HTML],
    drift_json: Output[Artifact],
) -> NamedTuple("DriftOutputs", [("drift_score", float), ("retrain_recommended", bool)]):
    """drift stage: reference sample vs production window (K-S / chi2 / PSI) and the Evidently report."""
    from housing.kfp import steps

    return steps.drift(params, reference, production_window, drift_metrics, drift_report, drift_json)


def retrain_decision(retrain_recommended: bool, force: bool) -> bool:
    """Retrain when the drift stage recommends it (drift_score >= drift.threshold) or when forced."""
    return retrain_recommended or force


def train(params: dict, train_split: Input[Dataset], model: Output[Model]):
    """train stage: fit the model pipeline (engineered features + regressor) on the training split."""
    from housing.kfp import steps

    steps.train(params, train_split, model)


def export(
    params: dict,
    model: Input[Model],
    train_split: Input[Dataset],
    test_split: Input[Dataset],
    onnx_model: Output[Model],
):
    """export stage: compile to ONNX, prove parity with sklearn on the test split, write metadata."""
    from housing.kfp import steps

    steps.export(params, model, train_split, test_split, onnx_model)


def evaluate(
    params: dict,
    onnx_model: Input[Model],
    test_split: Input[Dataset],
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
):
    """evaluate stage: metrics, slices and plots of the ONNX model; a missed gate fails the run here."""
    from housing.kfp import steps

    steps.evaluate(params, onnx_model, test_split, metrics, evaluation)


def register(
    params: dict,
    onnx_model: Input[Model],
    model: Input[Model],
    test_split: Input[Dataset],
    evaluation: Input[Artifact],
    validation: Input[Artifact],
    drift_json: Input[Artifact],
    drift_report: Input[HTML],
    mlflow_tracking_uri: str,
) -> NamedTuple("RegisterOutputs", [("version", str), ("model_version", str)]):
    """register stage: log the run to MLflow and register the ONNX model as @challenger."""
    from housing.kfp import steps

    return steps.register(
        params,
        onnx_model,
        model,
        test_split,
        evaluation,
        validation,
        drift_json,
        drift_report,
        mlflow_tracking_uri,
    )


# In the order the pipeline runs them.
FUNCTIONS = (config, validate, split, drift, retrain_decision, train, export, evaluate, register)


def make_components(image: str) -> SimpleNamespace:
    """Every component, running in ``image`` (which has kfp installed: nothing is pip-installed at run time),
    as attributes named after the functions."""
    decorate = dsl.component(base_image=image, install_kfp_package=False)
    return SimpleNamespace(**{function.__name__: decorate(function) for function in FUNCTIONS})
