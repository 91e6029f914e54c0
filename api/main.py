"""Builds the FastAPI app: settings, metrics, serving state, routes, error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.metrics import ApiMetrics, PrometheusMiddleware
from api.routes import health, predict
from api.serving import ServingState
from streamflow import __version__
from streamflow.logs import configure_logging
from streamflow.settings import Settings, get_settings

log = logging.getLogger("streamflow.api")


def create_app(
    settings: Settings | None = None,
    registry: CollectorRegistry | None = None,
    serving_factory: Callable[[Settings, ApiMetrics], ServingState] = ServingState,
) -> FastAPI:
    """`serving_factory` builds the serving state (tests give it other loaders)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    multiproc_dir = settings.prometheus_multiproc_dir if settings.api_workers > 1 else None
    metrics = ApiMetrics(registry or CollectorRegistry(), multiproc_dir)
    serving = serving_factory(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await serving.load_off_loop()  # what fails to load is retried later: the API starts anyway
        watcher = asyncio.create_task(serving.watch_registry())
        yield
        watcher.cancel()
        metrics.mark_worker_dead()

    app = FastAPI(
        title="StreamFlow churn API",
        version=__version__,
        description="Churn predictions from Feast online features, with Prometheus metrics.",
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hook asks on every request whether a provider is
        # configured, a real share of a cached prediction (docs/performance.md); metrics here
        # are Prometheus'.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings, app.state.metrics, app.state.serving = settings, metrics, serving
    app.include_router(predict.router)
    app.include_router(health.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI turns a JSON body that json.loads cannot even decode (not UTF-8, or nested
        # deeper than the recursion limit) into an undocumented 400; only JSONDecodeError becomes
        # a 422. Found by the fuzzer (tests/integration/test_api_fuzz.py): a malformed body is 422 here, the
        # same answer as for any other unparseable JSON.
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError | RecursionError):
            reason = "body is not UTF-8 text" if isinstance(cause, UnicodeDecodeError) else "JSON nested too deeply"
            return await request_validation_exception_handler(
                request,
                RequestValidationError(
                    [
                        {
                            "type": "json_invalid",
                            "loc": ("body",),
                            "msg": "JSON decode error",
                            "input": {},
                            "ctx": {"error": reason},
                        },
                    ]
                ),
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for operators; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the API logs"}, status_code=500)

    if settings.metrics_enabled:
        app.add_middleware(PrometheusMiddleware, metrics=metrics)
    return app
