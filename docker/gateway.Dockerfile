# The gateway image: `bosun gateway` with the gateway extra (FastAPI, uvicorn, httpx, the
# Kubernetes client). No torch, no model code, no kopf; runs as a non-root user on a
# read-only root filesystem.
#   docker build -f docker/gateway.Dockerfile -t ghcr.io/bosun-dev/bosun-gateway:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[gateway]'

FROM python:3.11-slim
RUN useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin bosun
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'bosun[gateway]'
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 1000:1000
# 8090: the OpenAI API, /health and /metrics
EXPOSE 8090
ENTRYPOINT ["bosun"]
CMD ["gateway", "--kubernetes", "--host", "0.0.0.0", "--port", "8090"]
