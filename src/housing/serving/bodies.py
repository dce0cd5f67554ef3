"""Pydantic models of every JSON body the server reads or writes: V1, V2 (Open Inference Protocol), feedback.

They are the OpenAPI document's schemas (:mod:`housing.serving.openapi`) and a slow reference validator: the
request path keeps the hand-written validation of :mod:`housing.serving.schema` (tens of times faster), and
a test checks that the two agree. The models that depend on the served model (feature names and valid
ranges, batch limit, output name) are built per server by :func:`request_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    create_model,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import TypeAliasType

from housing.serving.schema import MAX_FEEDBACK_TOKEN_CHARS, MAX_REQUEST_ID_CHARS, V2_DATATYPES, FeatureSchema

# A number as the server takes one: int or float, never a bool or a numeric string, finite.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
TensorData = TypeAliasType("TensorData", list[Union[Number, "TensorData"]])
# Printable ASCII (housing.serving.schema.valid_request_id): safe to echo in a header and to log.
RequestId = Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID_CHARS, pattern=r"^[ -~]+$")]
FeedbackToken = Annotated[str, Field(min_length=1, max_length=MAX_FEEDBACK_TOKEN_CHARS, pattern=r"^[ -~]+$")]
V2Datatype = Literal[V2_DATATYPES]  # type: ignore[valid-type]


class Reply(BaseModel):
    """A body the server writes: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A body or object clients write: fields the server does not use are ignored, as the protocols allow."""

    model_config = ConfigDict(extra="allow")


class Error(Reply):
    error: str = Field(description="What was wrong: the field and the rule it broke")


class Alive(Reply):
    status: str


class Live(Reply):
    live: bool


class Ready(Reply):
    ready: bool


class ModelList(Reply):
    models: list[str]


class ModelReady(Reply):
    name: str
    ready: bool


class ServerMetadata(Reply):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(Reply):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(Reply):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class V1Response(Reply):
    predictions: list[float]


class OutputParameters(Open):
    binary_data_size: int | None = Field(None, description="Binary tensor extension: the output's bytes")


class ResponseOutput(Reply):
    name: str
    shape: list[int]
    datatype: str
    parameters: OutputParameters | None = None
    data: list[float] | None = Field(None, description="Absent when the output is sent as binary data")


class InferenceResponse(Reply):
    model_name: str
    model_version: str
    id: str
    outputs: list[ResponseOutput]


class Feedback(Open):
    """Exactly one of ``feedback_token`` and ``request_id``, and exactly one of ``actual`` and ``actuals``."""

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"oneOf": [{"required": ["feedback_token"]}, {"required": ["request_id"]}]},
                {"oneOf": [{"required": ["actual"]}, {"required": ["actuals"]}]},
            ]
        }
    )

    # Optional but never null: typed without None, default None (not validated).
    feedback_token: FeedbackToken = Field(  # type: ignore[assignment]
        None, description="The prediction's X-Feedback-Token header: any replica scores it"
    )
    request_id: RequestId = Field(  # type: ignore[assignment]
        None, description="The prediction's X-Request-Id: only the replica that answered can score it"
    )
    actual: Number = Field(None, description="For a single-instance request")  # type: ignore[assignment]
    actuals: Annotated[list[Number], Field(min_length=1)] = Field(  # type: ignore[assignment]
        None, description="One per instance of the request"
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> Feedback:
        if ("feedback_token" in self.model_fields_set) == ("request_id" in self.model_fields_set):
            raise ValueError('send exactly one of "feedback_token" or "request_id"')
        if ("actual" in self.model_fields_set) == ("actuals" in self.model_fields_set):
            raise ValueError('send exactly one of "actual" (a number) or "actuals" (a list)')
        return self


class FeedbackAccepted(Reply):
    accepted: int


class InputParameters(Open):
    binary_data_size: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="Binary tensor extension: the input's bytes after the JSON (see the header)"
    )


class RequestParameters(Open):
    binary_data_output: StrictBool | None = Field(None, description="Return every output as binary data")


class RequestOutputParameters(Open):
    binary_data: StrictBool | None = Field(None, description="Return this output as binary data")


class RequestInput(Open):
    name: str
    shape: Annotated[list[Annotated[StrictInt, Field(ge=0)]], Field(min_length=1)]
    datatype: V2Datatype
    parameters: InputParameters | None = None
    data: TensorData | None = Field(None, description="Row-major values, flat or nested; absent when binary")


STATIC_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    Alive,
    Live,
    Ready,
    ModelList,
    ModelReady,
    ServerMetadata,
    ModelMetadata,
    V1Response,
    InferenceResponse,
    Feedback,
    FeedbackAccepted,
)


def _row_in_range(schema: FeatureSchema) -> AfterValidator:
    lower, upper = schema.lower.tolist(), schema.upper.tolist()

    def check(row: list[float]) -> list[float]:
        for value, low, high, name in zip(row, lower, upper, schema.names, strict=True):
            if not low <= value <= high:
                raise ValueError(f"{value} is outside the valid range [{low}, {high}] of {name}")
        return row

    return AfterValidator(check)


def request_models(schema: FeatureSchema, output_name: str) -> dict[str, type[BaseModel]]:
    """``V1Request`` and ``InferenceRequest`` for one model: its features, their valid ranges, its output."""
    bounds = zip(schema.names, schema.lower.tolist(), schema.upper.tolist(), strict=True)
    named_row: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "NamedInstance",
        __config__=ConfigDict(extra="forbid"),
        # Positional names as attributes (a feature could be called "copy"); the JSON uses the feature names.
        **{
            f"f{j}": (Annotated[Number, Field(ge=low, le=high, alias=name)], ...)
            for j, (name, low, high) in enumerate(bounds)
        },
    )
    width = schema.width
    number_row = Annotated[
        list[Number],
        Field(
            min_length=width,
            max_length=width,
            description=f"Raw feature values in this order: {', '.join(schema.names)}",
        ),
        _row_in_range(schema),
    ]
    v1_request = create_model(  # type: ignore[call-overload]
        "V1Request",
        __base__=Open,
        instances=(
            Annotated[list[Union[number_row, named_row]], Field(min_length=1, max_length=schema.max_batch)],  # noqa: UP007
            ...,
        ),
    )
    request_output = create_model(  # type: ignore[call-overload]
        "RequestOutput",
        __base__=Open,
        name=(Literal[output_name], ...),
        parameters=(RequestOutputParameters | None, None),
    )
    inference_request = create_model(  # type: ignore[call-overload]
        "InferenceRequest",
        __base__=Open,
        id=(str | None, None),
        parameters=(RequestParameters | None, None),
        inputs=(Annotated[list[RequestInput], Field(min_length=1)], ...),
        outputs=(list[request_output] | None, None),
    )
    return {"V1Request": v1_request, "InferenceRequest": inference_request}


class OpenAPI30Schema(GenerateJsonSchema):
    """JSON Schema as OpenAPI 3.0 wants it: ``nullable`` instead of a null type, ``enum`` instead of
    ``const``, ``oneOf`` for unions (the models only unite disjoint shapes), no per-field titles."""

    def field_title_should_be_set(self, schema: Any) -> bool:  # noqa: ARG002
        return False

    def default_schema(self, schema: Any) -> dict[str, Any]:
        generated = super().default_schema(schema)
        if "default" in generated and generated["default"] is None:  # "not given", which required says
            del generated["default"]
        return generated

    def nullable_schema(self, schema: Any) -> dict[str, Any]:
        inner = self.generate_inner(schema["schema"])
        return {"allOf": [inner], "nullable": True} if "$ref" in inner else {**inner, "nullable": True}

    def union_schema(self, schema: Any) -> dict[str, Any]:
        generated = super().union_schema(schema)
        if "anyOf" in generated:
            generated["oneOf"] = generated.pop("anyOf")
        return generated

    def literal_schema(self, schema: Any) -> dict[str, Any]:
        generated = super().literal_schema(schema)
        if "const" in generated:
            generated["enum"] = [generated.pop("const")]
        return generated


def component_schemas(models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """``components.schemas`` of an OpenAPI 3.0 document: every model and the models it uses."""
    from pydantic.json_schema import models_json_schema

    _, document = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
        schema_generator=OpenAPI30Schema,
    )
    return document["$defs"]
