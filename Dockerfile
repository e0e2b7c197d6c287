# syntax=docker/dockerfile:1
# Multi-stage: build a virtualenv with the pinned dependencies, then copy only it into a slim
# runtime image that runs as a non-root user. No compilers or pip caches in the final image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install -c constraints.txt .

FROM python:3.11-slim AS runtime
RUN groupadd --system booking && useradd --system --gid booking --uid 10001 --home /app booking
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY examples ./examples
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BOOKING_HOME=/app \
    DATA_DIR=/tmp/booking \
    HOST=0.0.0.0 \
    PORT=8000
USER booking
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/healthz', timeout=2)"]
# `serve` waits for the database, applies migrations, then serves (no demo data unless asked).
CMD ["booking-api", "serve", "--no-demo"]
