# One image for every process of a deployment, the image deploy/k8s/values.yaml and deploy/compose.yaml name:
#   code location    (default command) dagster code-server start -h 0.0.0.0 -p 4000 -m mlops_assets.definitions
#   webserver        dagster-webserver -h 0.0.0.0 -p 3000 -w deploy/workspace.yaml
#   daemon           dagster-daemon run -w deploy/workspace.yaml
#   Celery worker    celery -A mlops_assets.celery_app worker -c 2 -Q dagster -l INFO
#   API, dashboard   mlops serve --host 0.0.0.0 --port 8000 --workers 2
#   migrations       mlops db upgrade
# Build from the repository root: docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t mlops-assets .
FROM python:3.11-slim-bookworm

ARG GIT_COMMIT=unknown
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLOPS_PROFILE=production \
    MLOPS_GIT_COMMIT=$GIT_COMMIT \
    DAGSTER_HOME=/opt/dagster/home

# LightGBM needs OpenMP's runtime. Unpinned on purpose: a rebuild should take Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mlops
COPY pyproject.toml README.md ./
COPY mlops_assets ./mlops_assets
# The project itself at this commit; its dependencies' pins are pyproject.toml's.
# hadolint ignore=DL3013
RUN pip install ".[celery,k8s]"
COPY workspace.yaml ./
COPY deploy/workspace.yaml ./deploy/workspace.yaml
COPY dagster.production.yaml /opt/dagster/home/dagster.yaml

RUN useradd --create-home --uid 10001 mlops && chown -R mlops /opt/dagster/home
USER 10001
EXPOSE 3000 4000 8000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "mlops_assets.definitions"]
