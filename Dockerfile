# Model server image: `housing serve` (KServe V1 + Open Inference Protocol V2) with the model baked in.
#
#   dvc pull models          # or `dvc repro`: models/ must hold the artifact pinned by this commit's dvc.lock
#   docker buildx build --platform linux/amd64,linux/arm64 -t housing-model .
#
# Only the base dependencies of pyproject.toml are installed (numpy, onnxruntime, orjson, prometheus-client,
# uvicorn[standard], pydantic, pyyaml, typer), from the hashed lock requirements/serving.txt (`make lock`), so a
# rebuild installs the same files: no training stack. The lock carries the hashes of every platform's wheels,
# so nothing here is architecture specific (`make image-check` builds and runs it locally, see docs/serving.md).
# The container runs as uid 10001 and writes only to the inference log volume, so it works with a read-only
# root filesystem. Model directory precedence (see docs/serving.md): --model-dir / HOUSING_MODEL_DIR, then
# /mnt/models when KServe mounted a storageUri there, then the baked copy in HOUSING_BAKED_MODEL_DIR.
ARG BASE_IMAGE=python:3.11-slim

# --- build: wheel of the project + a virtualenv with its base dependencies ---------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, in their own layer: a source-only change rebuilds from the next step on. Wheels only, each
# checked against the lock's sha256 (pip refuses an unpinned or unhashed requirement in this mode).
COPY requirements/serving.txt ./requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --require-hashes --only-binary=:all: -r requirements/serving.txt
# The project itself without dependencies (the lock has them all: `pip check` proves it). Its build backend
# (setuptools, wheel) lives in pip's isolated build environment only and never reaches the image.
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/python -m pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/python -m pip install --no-deps /wheels/housing_mlops-*.whl \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib
# The baked model: world-readable, owned by root (the server never writes it), verified at build time so an
# image with a model that does not match its metadata's sha256 cannot be built.
COPY models/ /opt/housing/models/
RUN chmod -R a=rX,u+w /opt/housing/models \
    && /opt/venv/bin/python -c "from pathlib import Path; from housing.artifact import load_verified; \
m, _ = load_verified(Path('/opt/housing/models')); print('baked model', m.model_version)"

# --- runtime ----------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    HOUSING_HOST=0.0.0.0 \
    HOUSING_PORT=8080 \
    HOUSING_BAKED_MODEL_DIR=/opt/housing/models \
    HOUSING_INFERENCE_LOG_DIR=/var/log/housing/inference
RUN groupadd --system --gid 10001 housing \
    && useradd --system --uid 10001 --gid housing --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin housing \
    && mkdir -p /var/log/housing/inference \
    && chown -R 10001:10001 /var/log/housing
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/housing/models /opt/housing/models
VOLUME ["/var/log/housing"]
USER 10001:10001
WORKDIR /var/log/housing
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HOUSING_PORT', '8080') + '/v2/health/ready', timeout=2)"]
CMD ["housing", "serve"]

# --- train: the Kubeflow components' image (`--target train`, docs/kfp.md) ---------------------------------
# The project with its training stack and kfp, the runtime of the pipeline's lightweight components (their code
# is embedded in kfp/housing_pipeline.yaml; nothing is pip-installed when a component starts). Its own stages,
# after the serving ones and sharing none of their layers: the serving image never holds the training stack.
# Not from a hashed lock (requirements/ locks the serving image only): pip resolves pyproject's ranges.
FROM ${BASE_IMAGE} AS train-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels where there are any: kfp-server-api (kfp's API client) and antlr4-python3-runtime (dvc's hydra-core)
# are source distributions only, both pure Python.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip wheel --no-deps --wheel-dir /wheels . \
    && wheel=$(ls /wheels/housing_mlops-*.whl) \
    && /opt/venv/bin/python -m pip install --prefer-binary "${wheel}[train,kfp]" \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${BASE_IMAGE} AS train
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true
# KFP's launcher downloads input artifacts to /gcs, /minio, /s3 or /oci (by the object store's scheme) as the
# container's user: those directories must exist and be writable for a non-root user.
RUN groupadd --system --gid 10001 housing \
    && useradd --system --uid 10001 --gid housing --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin housing \
    && mkdir -p /gcs /minio /s3 /oci \
    && chown 10001:10001 /gcs /minio /s3 /oci
COPY --from=train-build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
# No CMD: KFP gives every component its command (kfp.dsl.executor_main running the embedded function).

# --- the default target: the serving image (`docker build .` without --target builds the last stage) -------
FROM runtime AS serving
