"""POST /predict: online features from Feast -> model -> churn prediction."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from api.deps import serving_of
from api.errors import ServiceUnavailable, UnknownUser
from api.schemas import ErrorResponse, PredictRequest, PredictResponse

router = APIRouter(tags=["prediction"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={
        404: {"model": ErrorResponse, "description": "the user_id has no features in the online store"},
        503: {"model": ErrorResponse, "description": "the model or the feature store is not ready"},
    },
)
async def predict(body: PredictRequest, request: Request) -> Response:
    # async + direct calls: a cached prediction takes microseconds and a miss (online read +
    # compiled model) is shorter than a thread-pool hop would cost. Only a due retry of a missing
    # model or store leaves the event loop (api/serving.py). The serving state comes from
    # serving_of, not from a `Serving` dependency: FastAPI's dependency resolution costs this
    # route a measurable share of its throughput (api/deps.py, docs/performance.md).
    try:
        result = await serving_of(request).serve(body.user_id)
    except ServiceUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    except UnknownUser:
        raise HTTPException(
            status_code=404, detail=f"unknown user_id {body.user_id!r}: no features in the online store"
        ) from None
    # Built from values this code produced (the schema is declared above and checked by the fuzz
    # test), so the response is serialized directly: FastAPI would validate the same fields again
    # on every request, a real share of a cached prediction's time (docs/performance.md).
    response = PredictResponse.model_construct(
        user_id=body.user_id,
        prediction=result.label,
        probability=result.probability,
        model_version=result.model_version,
        features_used=result.features,
    )
    return Response(response.model_dump_json(), media_type="application/json")
