from housing.artifact import load_verified, onnx_session


def test_model_dir_fixture_is_a_loadable_verified_artifact(model_dir, small_split):
    metadata, payload = load_verified(model_dir)
    session = onnx_session(payload)
    _, _, X_test, _ = small_split
    out = session.run(None, {metadata.input_name: X_test[:5]})[0]
    assert out.shape == (5, 1)
    assert metadata.feature_names[0] == "MedInc"
    assert metadata.metrics["r2"] > 0.7
