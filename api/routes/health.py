"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import Metrics, Serving
from api.schemas import HealthResponse, ReadinessResponse

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """Liveness: the process answers. Deliberately checks nothing else (no restarts on a DB blip)."""
    return HealthResponse(status="ok")


@router.get(
    "/ready",
    response_model=ReadinessResponse,
    responses={
        503: {"model": ReadinessResponse, "description": "not ready: `checks` gives the reason per dependency"},
    },
)
async def ready(serving: Serving) -> JSONResponse:
    """Readiness: the model is verified and the online store answers a lookup now."""
    readiness = await serving.readiness()
    body = ReadinessResponse(ready=readiness.ready, model_version=readiness.model_version, checks=readiness.checks)
    return JSONResponse(body.model_dump(), status_code=200 if readiness.ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: Metrics) -> Response:
    payload, content_type = metrics.exposition()
    return Response(payload, media_type=content_type)
