# syntax=docker/dockerfile:1
#
# PHQ-8 fusion service: two images from one file (how to run them: docs/deployment.md).
#
#   docker build --target cpu -t phq-fusion:cpu .   # onnxruntime (`cpu` extra), python:3.11 slim
#   docker build --target gpu -t phq-fusion:gpu .   # onnxruntime-gpu (`gpu` extra), CUDA 13 + cuDNN 9
#
# Each image holds one virtual environment with the service and exactly one of the two
# onnxruntime extras (the two wheels overwrite each other), the model store at
# /opt/phq/model_store (PHQ_MODEL_STORE; a store mounted read-only there replaces it),
# librosa's numba kernels compiled at build time into /opt/phq/numba-cache, and runs
# `python -m app` on 0.0.0.0:8000 as the non-root user 10001. Uploads are spooled to
# /run/phq-spool (PHQ_SPOOL_DIR): mount a tmpfs there (`--tmpfs /run/phq-spool`) so they
# never touch a disk.

# ---------------------------------------------------------------------------- cpu --
FROM python:3.11.14-slim-bookworm AS cpu-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# the dependencies first, against a placeholder package, so that layer survives code changes
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && /opt/venv/bin/pip install ".[cpu]"
COPY app ./app
RUN /opt/venv/bin/pip install --no-deps --force-reinstall .

FROM python:3.11.14-slim-bookworm AS cpu
COPY --from=cpu-build /opt/venv /opt/venv
# NUMBA_CPU_NAME=generic: numba keys its cache on the CPU it compiled for; generic code makes
# the kernels compiled on the build host valid on whatever x86-64 host runs the image
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PHQ_HOST=0.0.0.0 \
    PHQ_PORT=8000 \
    PHQ_MODEL_STORE=/opt/phq/model_store \
    PHQ_SPOOL_DIR=/run/phq-spool \
    NUMBA_CACHE_DIR=/opt/phq/numba-cache \
    NUMBA_CPU_NAME=generic
RUN groupadd --system --gid 10001 phq \
    && useradd --uid 10001 --gid phq --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin phq \
    && install -d -o phq -g phq -m 0700 /run/phq-spool \
    && install -d -o phq -g phq -m 0755 /opt/phq/numba-cache
COPY model_store /opt/phq/model_store
COPY docker/healthcheck.py docker/warm_cache.py /opt/phq/
WORKDIR /opt/phq
USER 10001:10001
# starts the real service once: compiles the numba kernels into NUMBA_CACHE_DIR (owned by the
# runtime user, so numba can use it) and fails the build if the models do not load
RUN python /opt/phq/warm_cache.py
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/phq/healthcheck.py"]
CMD ["python", "-m", "app"]

# ---------------------------------------------------------------------------- gpu --
# onnxruntime-gpu 1.31.1 from PyPI is built against CUDA 13.0 and cuDNN 9. ORT's CUDA EP
# requirements table (onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html)
# stops at the CUDA 12 builds (microsoft/onnxruntime#29767: CUDA 12 packages deprecated since
# 1.27, docs not updated for CUDA 13), so the fact comes from the wheel itself:
# onnxruntime/capi/build_and_package_info.py says cuda_version = '13.0', its METADATA's `cudnn`
# extra requires nvidia-cudnn-cu13~=9.0, and libonnxruntime_providers_cuda.so links
# libcudart.so.13 and libcublas.so.13. CUDA 13 needs an R580 or newer host driver.
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 AS gpu-base
# Ubuntu 24.04's own Python (3.12; the project supports >= 3.11): no third-party apt source.
# Unpinned apt versions: the archive drops superseded versions, so a pin would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*

FROM gpu-base AS gpu-build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && /opt/venv/bin/pip install ".[gpu]"
COPY app ./app
RUN /opt/venv/bin/pip install --no-deps --force-reinstall .

FROM gpu-base AS gpu
COPY --from=gpu-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PHQ_HOST=0.0.0.0 \
    PHQ_PORT=8000 \
    PHQ_MODEL_STORE=/opt/phq/model_store \
    PHQ_SPOOL_DIR=/run/phq-spool \
    NUMBA_CACHE_DIR=/opt/phq/numba-cache \
    NUMBA_CPU_NAME=generic
RUN groupadd --system --gid 10001 phq \
    && useradd --uid 10001 --gid phq --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin phq \
    && install -d -o phq -g phq -m 0700 /run/phq-spool \
    && install -d -o phq -g phq -m 0755 /opt/phq/numba-cache
COPY model_store /opt/phq/model_store
COPY docker/healthcheck.py docker/warm_cache.py /opt/phq/
WORKDIR /opt/phq
USER 10001:10001
# no GPU during a build: the warm-up runs on the CPU provider (the numba cache is the same)
RUN python /opt/phq/warm_cache.py
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/phq/healthcheck.py"]
CMD ["python", "-m", "app"]
