# The runtime image: `bosun serve` (and, for tuning Workspaces, the tuning job; for
# RAGEngines, `bosun rag serve` with either vector store) with the serve, tune, rag and
# qdrant extras. The vllm runtime uses vLLM's own image instead (vllm/vllm-openai).
#   docker build -f docker/runtime.Dockerfile -t ghcr.io/bosun-dev/bosun:0.1.0 .
# PyPI's torch wheels for Linux bundle CUDA, so one image serves GPUs (with the NVIDIA
# container runtime) and CPUs. For a smaller CPU-only image:
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu
FROM python:3.11-slim AS build
ARG TORCH_INDEX=https://pypi.org/simple
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels --extra-index-url "$TORCH_INDEX" '.[serve,tune,rag,qdrant]'

FROM python:3.11-slim
RUN useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin bosun
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'bosun[serve,tune,rag,qdrant]'
# Model files and converted caches go to /cache (an emptyDir or a volume in the pod).
ENV PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    BOSUN_CACHE_DIR=/cache/bosun
USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["bosun"]
CMD ["serve", "--help"]
