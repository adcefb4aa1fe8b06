"""The JSON shapes of the HTTP API, as pydantic models, so FastAPI's OpenAPI page documents them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Box", "ErrorResponse", "Face", "Health", "Limits", "ModelInfo", "PredictResponse"]


class Box(BaseModel):
    """A face box in pixels of the image that was sent."""

    x: int
    y: int
    w: int
    h: int


class Face(BaseModel):
    """One face, as ``dan predict --output json`` writes it."""

    face: int = Field(description="position in the image's list, largest face first")
    box: Box
    label: str = Field(description="the most probable class")
    confidence: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="softmax over the classes, by class name, in model order")
    valence: float | None = Field(None, description="valence in [-1, 1] (only from a model with that output)")
    arousal: float | None = Field(None, description="arousal in [-1, 1] (only from a model with that output)")


class PredictResponse(BaseModel):
    """Every face of one image."""

    width: int
    height: int
    faces: list[Face]


class Limits(BaseModel):
    """What the server refuses."""

    max_upload_bytes: int = Field(description="largest request body or live frame (413 above it)")
    max_pixels: int | None = Field(description="largest image, width x height, read from its header (413 above it)")


class ModelInfo(BaseModel):
    """The model and detector the server runs."""

    labels: list[str]
    preprocessing: dict = Field(description="input_size, mean and std of the model's input")
    backend: str = Field(description="model runtime: torch or onnx")
    detector: str = Field(description="face detector: haar, yunet or none")
    attention: bool = Field(description="whether the live stream can carry the heads' attention maps")
    limits: Limits


class Health(BaseModel):
    """The server is up."""

    status: str = "ok"


class ErrorResponse(BaseModel):
    """Any refused request: one line saying what is wrong."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {  # FastAPI's ``responses``
    401: {"model": ErrorResponse, "description": "missing or wrong token (when the server has one)"},
    413: {"model": ErrorResponse, "description": "body or image larger than the server's limits"},
    415: {"model": ErrorResponse, "description": "not an image of a supported type"},
    422: {"model": ErrorResponse, "description": "empty, truncated or undecodable image"},
}
