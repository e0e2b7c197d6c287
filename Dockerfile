# Multi-stage: build a virtualenv with the pinned dependencies, then copy only it into a slim
# runtime image that runs as a non-root user. No compilers or pip caches in the final image.
#
# No `# syntax=` line: it makes BuildKit fetch a frontend image from a registry before anything
# else (an offline or mirrored build fails at line 1), and nothing here needs it. PYTHON_IMAGE
# lets a mirror or a digest-pinned base stand in:
#   docker build --build-arg PYTHON_IMAGE=mirror.example/python:3.11-slim@sha256:... .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml constraints.txt build-requirements.txt README.md ./
COPY src ./src
# Every version pinned, the build backend's too: pip's isolated build environment would ignore
# `-c`, so install the pinned setuptools first and build without isolation.
RUN pip install -r build-requirements.txt \
 && pip install --no-build-isolation -c constraints.txt .

FROM ${PYTHON_IMAGE} AS runtime
# VERSION is pyproject.toml's (a test keeps them equal); REVISION and SOURCE come from the
# checkout: scripts/container-smoke.sh passes them, as a release build should.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="booking-api" \
      org.opencontainers.image.description="Appointment-booking API server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 booking \
 && useradd --system --gid 10001 --uid 10001 --home /app --shell /usr/sbin/nologin booking
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY examples ./examples
# Production-shaped by default: JWT_MODE=production (keys of an identity provider) and no demo
# data, so nothing in the logs can be used to call the API. The demo is opt-in: see
# docker-compose.demo.yml. DATA_DIR is the only place written (mount a tmpfs on /tmp when the
# root file system is read-only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BOOKING_HOME=/app \
    DATA_DIR=/tmp/booking \
    JWT_MODE=production \
    HOST=0.0.0.0 \
    PORT=8000
# Numeric, so that a runtime can check it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
EXPOSE 8000
# Liveness: /healthz answers while the process serves, database or not (right for restarts);
# route traffic on /readyz. `booking-api health` probes loopback when HOST is a wildcard address,
# so it works whatever HOST is. podman keeps HEALTHCHECK only in Docker-format images
# (`podman build --format docker`); OCI-format images drop it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["booking-api", "health"]
# `serve` waits for the database, applies migrations, then serves.
CMD ["booking-api", "serve", "--no-demo"]
