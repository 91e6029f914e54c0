"""The routes' dependencies, typed: a route asks for `serving: Serving` or `metrics: Metrics`.

Both are built once by `api.main.create_app` and kept on `app.state`; the functions here are the
one place that reads them from there. The getters FastAPI calls are `async def` on purpose: it
runs a plain `def` dependency in its thread pool, a thread hop on every request.

POST /predict is the exception: it takes the `Request` and calls `serving_of` itself. FastAPI
resolves each `Depends` with a nested pass of its dependency solver on every request, which on
the cached path costs a measurable share of the route's throughput (the paired measurement is in
docs/performance.md, "/predict against bare FastAPI").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.metrics import ApiMetrics
from api.serving import ServingState


def serving_of(request: Request) -> ServingState:
    serving: ServingState = request.app.state.serving
    return serving


def metrics_of(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_serving(request: Request) -> ServingState:
    return serving_of(request)


async def get_metrics(request: Request) -> ApiMetrics:
    return metrics_of(request)


Serving = Annotated[ServingState, Depends(get_serving)]
Metrics = Annotated[ApiMetrics, Depends(get_metrics)]
