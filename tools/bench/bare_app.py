"""The framework's ceiling for /predict: FastAPI validating the same request body and returning
a constant, served by the same uvicorn command line as the API."""

from __future__ import annotations

from fastapi import FastAPI

from api.schemas import PredictRequest

CONSTANT = {"prediction": 0, "probability": 0.5}


def create_app() -> FastAPI:
    app = FastAPI(title="bare FastAPI endpoint (benchmark baseline)")

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict:
        return CONSTANT

    @app.get("/ready")
    async def ready() -> dict:
        return {"ready": True}

    return app
