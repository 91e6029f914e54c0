# syntax=docker/dockerfile:1
# StreamFlow images, one file, two targets (built by `make images`):
#   docker build --target api  -t streamflow-api:<version> .    FastAPI + uvicorn, `python -m api`
#   docker build --target jobs -t streamflow-jobs:<version> .   drift CronJob and bootstrap Job
# Each image gets the hashed lock of its own process (requirements-<target>.lock: the core's
# dependencies plus the target's extra), so the API image carries no Evidently or Kubernetes client.
# Both run as UID 10001 on a read-only root filesystem (the chart mounts /tmp and
# /var/lib/streamflow as emptyDirs).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: uv, and an empty /opt/venv; one stage per target fills it from its lock ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv venv --python /usr/local/bin/python3.11 /opt/venv

FROM build AS build-api
COPY requirements-api.lock /tmp/requirements.lock
RUN uv pip sync --python /opt/venv/bin/python --require-hashes /tmp/requirements.lock

FROM build AS build-jobs
COPY requirements-jobs.lock /tmp/requirements.lock
RUN uv pip sync --python /opt/venv/bin/python --require-hashes /tmp/requirements.lock

# --- runtime base: non-root; each target adds its venv, then the shared core and its package --
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN groupadd --system --gid 10001 streamflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin streamflow
WORKDIR /app
USER 10001:10001

# --- API ---------------------------------------------------------------------------------------
FROM runtime AS api
COPY --from=build-api /opt/venv /opt/venv
COPY streamflow/ streamflow/
COPY api/ api/
EXPOSE 8000
ENV STREAMFLOW_API_HOST=0.0.0.0
CMD ["python", "-m", "api"]

# --- jobs: drift, bootstrap, train, datagen ----------------------------------------------------
FROM runtime AS jobs
COPY --from=build-jobs /opt/venv /opt/venv
COPY streamflow/ streamflow/
COPY jobs/ jobs/
CMD ["python", "-m", "jobs.drift"]
