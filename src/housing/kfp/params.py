"""The pipeline's parameters: one struct parameter per ``params.yaml`` section a stage reads.

Each section's default is the section as ``params.yaml`` gives it (with the model's defaults filled in), and
every document that reaches a stage, at compile time, at submission or inside a component, is validated by the
same ``housing.config.Params`` model, so a bad value fails naming its key (``train.hgb.learning_rate``).

Sections rather than one parameter per key: the KFP backend resolves a task input only when the whole value is
one pipeline channel (a struct built from channels would reach the component unresolved), so per-key
parameters would have to be spelled out again as the inputs of a component. ``KEY=VALUE`` overrides
(:func:`apply_overrides`) give the command line per-key control.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from housing.config import Params, validate_params
from housing.errors import ConfigError

# The sections dvc.yaml's stages list under `params:` (tests/kfp checks the two agree). `abtest` is read by
# no stage. The data paths say where a component lays its input artifacts out in its working directory.
STAGE_SECTIONS = ("data", "validate", "split", "train", "export", "evaluate", "drift", "register")

Sections = dict[str, dict[str, Any]]


def section_defaults(params: Params) -> Sections:
    """The stage sections of ``params`` as JSON-ready documents, keyed by their ``params.yaml`` names.

    Unset optional values (``None``, e.g. ``train.hgb.max_depth``) are left out: KFP's parameter values have
    no null, and leaving one out gives the same default back when validated."""
    document = params.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {name: document[name] for name in STAGE_SECTIONS}


def params_from_sections(sections: Mapping[str, Any], source: str) -> Params:
    """Validate the stage sections (any missing one takes the model's default) into ``Params``."""
    unknown = sorted(set(sections) - set(STAGE_SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: {', '.join(unknown)}: not a stage section; expected {STAGE_SECTIONS}")
    return validate_params(dict(sections), source)


def apply_overrides(
    sections: Mapping[str, Any], assignments: Iterable[str], source: str = "--set"
) -> Sections:
    """``sections`` with each ``KEY=VALUE`` applied (KEY a dotted ``params.yaml`` path such as
    ``train.hgb.learning_rate``, VALUE read as YAML), validated as a whole; unknown keys and bad values fail
    naming the key. Returns the validated sections, every default filled in."""
    updated = copy.deepcopy(dict(sections))
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key:
            raise ConfigError(
                f"{source} {assignment!r}: expected KEY=VALUE, e.g. train.hgb.learning_rate=0.1"
            )
        section, *path = key.split(".")
        if section not in STAGE_SECTIONS:
            raise ConfigError(
                f"{source} {key}: not a pipeline parameter; keys start with one of {STAGE_SECTIONS}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} {key}: value {text!r} is not valid YAML: {exc}") from None
        if not path:
            updated[section] = value
            continue
        node = updated.setdefault(section, {})
        for part in path[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source} {key}: {'.'.join([section, *path[:-1]])} is not a mapping")
        node[path[-1]] = value
    return section_defaults(params_from_sections(updated, source))
