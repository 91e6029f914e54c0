"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

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
async def ready(request: Request) -> JSONResponse:
    """Readiness: the model is verified and the online store answers a lookup now."""
    serving = request.app.state.serving
    serving.retry_if_due()
    checks = {
        "model": "ok" if serving.model is not None else serving.errors.get("model", "not loaded"),
        "feature_store": serving.check_store(),
    }
    is_ready = all(v == "ok" for v in checks.values())
    serving.metrics.ready.set(1 if is_ready else 0)
    body = ReadinessResponse(
        ready=is_ready, model_version=serving.model.version if serving.model else None, checks=checks
    )
    return JSONResponse(body.model_dump(), status_code=200 if is_ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    payload, content_type = request.app.state.metrics.exposition()
    return Response(payload, media_type=content_type)
