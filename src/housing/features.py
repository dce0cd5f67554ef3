"""Feature engineering, defined once: a scikit-learn transformer plus its ONNX converter.

The transformer is the first step of the model pipeline, so training, evaluation and the exported ONNX
graph (which is what the model server runs) all compute the same features. Arithmetic is done in float32
with only correctly rounded IEEE operations (+, -, *, /, sqrt, min), in the same order as the ONNX graph,
so the two agree bit for bit and no tree split is crossed by rounding.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from housing.config import FEATURES

# Raw column positions (the ONNX input and the model server use the same order).
MED_INC, HOUSE_AGE, AVE_ROOMS, AVE_BEDRMS, POPULATION, AVE_OCCUP, LATITUDE, LONGITUDE = range(len(FEATURES))

KM_PER_DEGREE = 111.195
# Reference points for distances: San Francisco and Los Angeles city centres (lat, lon).
BAY_AREA = (37.7749, -122.4194)
LOS_ANGELES = (34.0522, -118.2437)
# A handful of blocks (dormitories, prisons) report over 1 000 people per household; cap them.
MAX_PEOPLE_PER_HOUSEHOLD = 20.0

ENGINEERED = (
    "bedroom_ratio",
    "rooms_per_person",
    "people_per_household",
    "households",
    "income_per_room",
    "dist_to_bay",
    "dist_to_la",
    "diag_sum",
    "diag_diff",
)


def _f32(value: float) -> np.float32:
    return np.float32(value)


def _distance_constants(point: tuple[float, float]) -> tuple[np.float32, np.float32, np.float32]:
    """Equirectangular projection around the point: km per degree of latitude and of longitude."""
    lat0, lon0 = point
    return _f32(lat0), _f32(lon0), _f32(KM_PER_DEGREE * math.cos(math.radians(lat0)))


class HousingFeatures(TransformerMixin, BaseEstimator):
    """Append engineered features to the 8 raw California housing features.

    - ``bedroom_ratio``: bedrooms / rooms (the seed's feature).
    - ``rooms_per_person``: rooms / occupants; crowding.
    - ``people_per_household``: the block's mean occupancy (the seed's population / households; in this
      data set it is ``AveOccup``), capped at 20.
    - ``households``: population / occupancy, i.e. the number of households; block size.
    - ``income_per_room``: income relative to house size.
    - ``dist_to_bay`` / ``dist_to_la``: km to San Francisco / Los Angeles (the seed's dist_to_bay).
    - ``diag_sum`` / ``diag_diff``: latitude ± longitude; coordinates rotated by 45 degrees, which
      follow the coast and let axis-aligned tree splits carve diagonal regions.
    """

    def fit(self, X, y=None):  # noqa: ARG002 - sklearn API
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(FEATURES):
            raise ValueError(f"expected {len(FEATURES)} columns {list(FEATURES)}, got shape {X.shape}")
        self.n_features_in_ = len(FEATURES)
        return self

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(FEATURES):
            raise ValueError(f"expected {len(FEATURES)} columns {list(FEATURES)}, got shape {X.shape}")
        rooms, bedrooms, occupancy = X[:, AVE_ROOMS], X[:, AVE_BEDRMS], X[:, AVE_OCCUP]
        lat, lon = X[:, LATITUDE], X[:, LONGITUDE]
        extra = [
            bedrooms / rooms,
            rooms / occupancy,
            np.minimum(occupancy, _f32(MAX_PEOPLE_PER_HOUSEHOLD)),
            X[:, POPULATION] / occupancy,
            X[:, MED_INC] / rooms,
            distance_km(lat, lon, BAY_AREA),
            distance_km(lat, lon, LOS_ANGELES),
            lat + lon,
            lat - lon,
        ]
        return np.column_stack([X, *extra]).astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:  # noqa: ARG002 - sklearn API
        return np.asarray([*FEATURES, *ENGINEERED], dtype=object)


def distance_km(lat: np.ndarray, lon: np.ndarray, point: tuple[float, float]) -> np.ndarray:
    lat0, lon0, km_per_lon = _distance_constants(point)
    dy = (lat - lat0) * _f32(KM_PER_DEGREE)
    dx = (lon - lon0) * km_per_lon
    return np.sqrt(dx * dx + dy * dy)


# --- ONNX -----------------------------------------------------------------------------------------------


def _shape_calculator(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([rows, len(FEATURES) + len(ENGINEERED)])


def _converter(scope, operator, container) -> None:
    """Emit the same float32 arithmetic as :meth:`HousingFeatures.transform`, op for op."""
    from skl2onnx.algebra.onnx_ops import (
        OnnxAdd,
        OnnxConcat,
        OnnxDiv,
        OnnxMin,
        OnnxMul,
        OnnxSlice,
        OnnxSqrt,
        OnnxSub,
    )

    opv = container.target_opset
    X = operator.inputs[0]

    def column(index: int):
        bounds = (np.array([index], dtype=np.int64), np.array([index + 1], dtype=np.int64))
        return OnnxSlice(X, *bounds, np.array([1], dtype=np.int64), op_version=opv)

    def const(value: float) -> np.ndarray:
        return np.array([value], dtype=np.float32)

    def distance(lat, lon, point: tuple[float, float]):
        lat0, lon0, km_per_lon = _distance_constants(point)
        dy = OnnxMul(OnnxSub(lat, const(lat0), op_version=opv), const(KM_PER_DEGREE), op_version=opv)
        dx = OnnxMul(OnnxSub(lon, const(lon0), op_version=opv), const(km_per_lon), op_version=opv)
        squares = OnnxAdd(OnnxMul(dx, dx, op_version=opv), OnnxMul(dy, dy, op_version=opv), op_version=opv)
        return OnnxSqrt(squares, op_version=opv)

    rooms, bedrooms, occupancy = column(AVE_ROOMS), column(AVE_BEDRMS), column(AVE_OCCUP)
    lat, lon = column(LATITUDE), column(LONGITUDE)
    extra = [
        OnnxDiv(bedrooms, rooms, op_version=opv),
        OnnxDiv(rooms, occupancy, op_version=opv),
        OnnxMin(occupancy, const(MAX_PEOPLE_PER_HOUSEHOLD), op_version=opv),
        OnnxDiv(column(POPULATION), occupancy, op_version=opv),
        OnnxDiv(column(MED_INC), rooms, op_version=opv),
        distance(lat, lon, BAY_AREA),
        distance(lat, lon, LOS_ANGELES),
        OnnxAdd(lat, lon, op_version=opv),
        OnnxSub(lat, lon, op_version=opv),
    ]
    result = OnnxConcat(X, *extra, axis=1, op_version=opv, output_names=[operator.outputs[0]])
    result.add_to(scope, container)


def register_onnx_converter() -> None:
    """Teach skl2onnx about :class:`HousingFeatures` (idempotent)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(HousingFeatures, "HousingMlopsFeatures", _shape_calculator, _converter)
