"""Request and response bodies: the API contract published in the OpenAPI spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from streamflow.features import FEATURE_NAMES

FeatureValue = float | int | str | None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        examples=["4686-GEFRM", "U0001"],
        description="subscriber id (the Feast entity key)",
    )


class PredictResponse(BaseModel):
    user_id: str
    prediction: int = Field(..., ge=0, le=1, description="1 = predicted to churn")
    probability: float = Field(..., ge=0.0, le=1.0, description="predicted probability of churn")
    model_version: str
    features_used: dict[str, FeatureValue] = Field(
        ..., description=f"the {len(FEATURE_NAMES)} online features the model saw"
    )


class ErrorResponse(BaseModel):
    detail: str = Field(..., description="what went wrong and what to do about it")


class HealthResponse(BaseModel):
    status: str


class ReadinessResponse(BaseModel):
    ready: bool
    model_version: str | None
    checks: dict[str, str] = Field(..., description="'ok' or the reason a dependency is not ready")
