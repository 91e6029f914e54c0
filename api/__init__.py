"""StreamFlow churn-prediction API (FastAPI on uvicorn), instrumented for Prometheus."""
