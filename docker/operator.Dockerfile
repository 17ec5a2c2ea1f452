# The operator image: `bosun operator` with the operator extra (kopf, kubernetes).
# No torch, no model code; runs as a non-root user on a read-only root filesystem.
#   docker build -f docker/operator.Dockerfile -t ghcr.io/bosun-dev/bosun-operator:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[operator]'

FROM python:3.11-slim
RUN useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin bosun
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'bosun[operator]'
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 1000:1000
# 8080: /healthz (liveness, readiness); 8081: /metrics
EXPOSE 8080 8081
ENTRYPOINT ["bosun"]
CMD ["operator", "--all-namespaces"]
