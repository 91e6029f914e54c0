"""POST /predict: online features from Feast -> model -> churn prediction."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.schemas import ErrorResponse, PredictRequest, PredictResponse
from api.serving import ServiceUnavailable
from streamflow.features import encode_row

router = APIRouter(tags=["prediction"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={
        404: {"model": ErrorResponse, "description": "the user_id has no features in the online store"},
        503: {"model": ErrorResponse, "description": "the model or the feature store is not ready"},
    },
)
async def predict(body: PredictRequest, request: Request) -> PredictResponse:
    # async + direct calls: the Feast SQLite lookup (~1 ms) and the numpy model (~1 ms) are
    # shorter than a thread-pool hop would cost.
    serving = request.app.state.serving
    try:
        model = serving.require_model()
        features = serving.online_features(body.user_id)
    except ServiceUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    if all(value is None for value in features.values()):
        raise HTTPException(status_code=404, detail=f"unknown user_id {body.user_id!r}: no features in the online store")
    probability = float(model.churn_probability(encode_row(features))[0])
    prediction = int(probability >= serving.settings.prediction_threshold)
    serving.metrics.predictions.labels("churn" if prediction else "stay").inc()
    return PredictResponse(
        user_id=body.user_id, prediction=prediction, probability=probability,
        model_version=model.version, features_used=features,
    )
