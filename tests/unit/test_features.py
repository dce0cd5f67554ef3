import numpy as np
import pytest

from housing.config import FEATURES
from housing.features import ENGINEERED, HousingFeatures, register_onnx_converter

ROW = np.array([[8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]], dtype=np.float32)


def test_transform_appends_named_engineered_features():
    transformer = HousingFeatures().fit(ROW)
    out = transformer.transform(ROW)
    names = list(transformer.get_feature_names_out())
    assert names == [*FEATURES, *ENGINEERED]
    assert out.shape == (1, len(FEATURES) + len(ENGINEERED))
    assert out.dtype == np.float32
    value = dict(zip(names, out[0], strict=True))
    assert value["bedroom_ratio"] == pytest.approx(1.02381 / 6.984127, rel=1e-6)
    assert value["rooms_per_person"] == pytest.approx(6.984127 / 2.555556, rel=1e-6)
    assert value["households"] == pytest.approx(322.0 / 2.555556, rel=1e-6)
    assert value["diag_sum"] == pytest.approx(37.88 - 122.23, rel=1e-6)
    # This Berkeley block is ~20 km from San Francisco's centre and ~560 km from Los Angeles.
    assert 18 < value["dist_to_bay"] < 23
    assert 500 < value["dist_to_la"] < 600


def test_people_per_household_is_capped():
    row = ROW.copy()
    row[0, 5] = 1243.0
    out = HousingFeatures().fit(row).transform(row)
    assert out[0, len(FEATURES) + ENGINEERED.index("people_per_household")] == 20.0


def test_wrong_number_of_columns_is_rejected():
    with pytest.raises(ValueError, match="expected 8 columns"):
        HousingFeatures().fit(np.zeros((2, 7)))


def test_onnx_graph_reproduces_the_transformer_bit_for_bit(small_split):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from housing.artifact import onnx_session

    X, _, X_test, _ = small_split
    transformer = HousingFeatures().fit(X)
    register_onnx_converter()
    model = to_onnx(transformer, initial_types=[("input", FloatTensorType([None, 8]))], target_opset=17)
    session = onnx_session(model.SerializeToString())
    data = np.vstack([X, X_test])
    onnx_out = session.run(None, {"input": data})[0]
    np.testing.assert_array_equal(onnx_out, transformer.transform(data))
