"""The route table drives dispatch, 405 Allow and the OpenAPI document: all three agree by construction."""

from __future__ import annotations

import pytest
from asgi_client import call

from housing.serving.routes import OPENAPI_PATH, ROUTES, Protocol, Route, RouteTable, path_parameters
from housing.serving.server import build_app
from housing.serving.settings import ServeSettings

METHODS = ("GET", "POST", "PUT", "DELETE")


@pytest.fixture(scope="module")
def app(model_dir, tmp_path_factory):
    return build_app(ServeSettings(model_dir=model_dir, inference_log_dir=tmp_path_factory.mktemp("log")))


def concrete(path: str, app) -> str:
    return path.format(model_name=app.router.name, model_version=app.router.champion.version)


def test_the_table_resolves_paths_to_their_handlers_and_parameters():
    table = RouteTable(ROUTES, {route.handler_name: route.handler_name for route in ROUTES})  # names
    methods, params = table.resolve("/v1/models/m:predict")
    assert (methods, params) == ({"POST": "v1_predict"}, {"model_name": "m"})
    methods, params = table.resolve("/v2/models/m/versions/sha-1/infer")
    assert (methods, params) == ({"POST": "v2_infer"}, {"model_name": "m", "model_version": "sha-1"})
    assert table.resolve("/v2/models/m/infer") == ({"POST": "v2_infer"}, {"model_name": "m"})
    assert table.resolve("/v1/models/m") == ({"GET": "v1_model_ready"}, {"model_name": "m"})
    assert table.resolve("/v2/health/ready") == ({"GET": "v2_ready"}, {})
    for unknown in ("/v2/models/m/explain", "/v1/models/", "/v2/models//infer", "/v2/models/m/versions"):
        assert table.resolve(unknown) is None, unknown
    assert table.allow({"POST": 1, "GET": 2}) == "GET, POST"
    with pytest.raises(ValueError, match="routes without a handler"):
        RouteTable(ROUTES, {})


def test_every_route_is_served_and_every_other_method_is_405_with_the_tables_allow(app):
    by_path: dict[str, set[str]] = {}
    for route in ROUTES:
        by_path.setdefault(route.path, set()).add(route.method)
    for path, allowed in by_path.items():
        url = concrete(path, app)
        for method in METHODS:
            response = call(app, method, url, content=b"{}" if method == "POST" else None)
            if method in allowed:
                assert response.status_code != 405, (method, url)
                assert response.status_code < 500, (method, url, response.text)
            else:
                assert response.status_code == 405, (method, url)
                assert response.headers["allow"] == ", ".join(sorted(allowed))


def test_the_openapi_document_has_exactly_the_tables_operations(app):
    document = call(app, "GET", OPENAPI_PATH).json()
    documented = {
        (method.upper(), path, operation["operationId"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert documented == {(route.method, route.path, route.operation) for route in ROUTES}
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert names == path_parameters(route.path)
        assert set(operation["responses"]) == {str(route.status), *map(str, route.errors)}
        if route.request:
            assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
                f"/{route.request}"
            )
        body_types = set(operation.get("requestBody", {}).get("content", {}))
        assert ("application/octet-stream" in body_types) == route.binary_tensors


def test_routes_say_what_they_are():
    assert {route.protocol for route in ROUTES} == set(Protocol)
    predicting = [route for route in ROUTES if route.predicts]
    assert {route.operation for route in predicting} == {"v1_predict", "v2_infer", "v2_infer_version"}
    assert all(route.method == "POST" for route in predicting)
    assert ROUTES[: len(predicting)] == tuple(predicting)  # the hot routes are matched first
    assert isinstance(ROUTES[0], Route)
