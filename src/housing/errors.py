"""Typed errors for everything a user can cause; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class HousingError(Exception):
    """Base class: the message names the thing (file, key, column, field) and the rule it broke."""

    exit_code = 2


class ConfigError(HousingError):
    """``params.yaml`` (or a flag) is missing, malformed or has an unknown/invalid key."""


class DataError(HousingError):
    """An input file is missing, unreadable or not shaped as expected."""


class DataValidationError(HousingError):
    """The data set broke one or more validation rules; ``report`` lists each violation."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


class GateError(HousingError):
    """A quality gate (evaluation metric threshold or ONNX parity) was missed."""


class RegistryError(HousingError):
    """The model registry refused an operation (no such alias, nothing to roll back to, ...)."""


class ModelIntegrityError(HousingError):
    """A model artifact does not match the checksum its metadata records."""
