# syntax=docker/dockerfile:1
# lookalike images, one per service, from the repo root:
#   docker build --target query  -t lookalike-query .    # gRPC API (python -m lookalike_services.query)
#   docker build --target worker -t lookalike-worker .   # Celery ingest worker (python -m lookalike_services.worker)
#   docker build --target web    -t lookalike-web .      # HTTP/JSON gateway + web page (lookalike web)
# All targets build on the stage "base" (dependencies, package, converted weights), so the
# others reuse every layer of the first from the build cache.
FROM python:3.11-slim AS base

# Runs with a read-only root filesystem (compose read_only, Kubernetes readOnlyRootFilesystem):
# the only writable path is /tmp (TensorFlow autograph's generated code, and the matplotlib and
# Keras config/caches, pointed there by MPLCONFIGDIR and KERAS_HOME). The model weights are
# converted at build time into LOOKALIKE_CACHE_DIR and only read at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    LOOKALIKE_CACHE_DIR=/opt/lookalike/cache \
    LOOKALIKE_DATA_DIR=/var/lib/lookalike \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras

RUN groupadd --system --gid 10001 lookalike \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/lookalike \
        --shell /usr/sbin/nologin lookalike \
 && install -d -o 10001 -g 10001 /opt/lookalike/cache /var/lib/lookalike

# Dependencies first (the big layer: TensorFlow), cached until pyproject.toml changes: the
# client's and the [server] extra's requirements, read from pyproject.toml.
COPY pyproject.toml README.md /tmp/src/
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/src/pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# The package: lookalike and services/ (installed as lookalike_services, see pyproject.toml).
COPY lookalike /tmp/src/lookalike
COPY services /tmp/src/services
RUN pip install --no-deps /tmp/src && rm -rf /tmp/src /tmp/requirements.txt

USER 10001:10001
WORKDIR /home/lookalike
# Convert and cache the model weights now, so containers never download or convert at start.
# The cache file is written 0600: open it up read-only, so that any runtime UID can load it.
RUN lookalike warmup && chmod -R a+rX /opt/lookalike/cache


FROM base AS query
# gRPC (LOOKALIKE_LISTEN) and Prometheus /metrics (LOOKALIKE_METRICS_PORT).
EXPOSE 50051 9464
# gRPC health check against LOOKALIKE_SERVER (default localhost:50051); exits 0 only on SERVING.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 CMD ["lookalike", "health"]
CMD ["python", "-m", "lookalike_services.query"]


FROM base AS worker
# Prometheus /metrics (LOOKALIKE_METRICS_PORT).
EXPOSE 9464
# Healthy when this container's Celery node (celery@<hostname>, the default name that the
# worker keeps) answers a ping over Redis. `lookalike worker-health` sends it from a bare
# Celery app: no TensorFlow import per check (~4 s and ~600 MB).
# The worker runs the solo pool: it answers between chunks, so a chunk longer than the
# 20 s ping timeout fails one check; hence the long interval and several retries.
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=5 \
    CMD ["lookalike", "worker-health"]
CMD ["python", "-m", "lookalike_services.worker"]


FROM base AS web
# The HTTP/JSON gateway and the web page (`lookalike web`) in front of the gRPC query service
# at LOOKALIKE_SERVER (compose: query:50051; Kubernetes: the lookalike-query Service). It
# holds no API keys: callers send theirs (x-api-key), and it forwards them on each call.
ENV LOOKALIKE_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 8080
# GET /healthz (urllib: the image has no curl): 200 when the gateway is up and the gRPC
# service answers SERVING.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["lookalike", "web-health"]
CMD ["lookalike", "web"]
