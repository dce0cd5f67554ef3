"""housing-mlops: California house values, from data to a served model."""

__version__ = "0.1.0"
