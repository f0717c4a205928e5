# The market-data service as an image (docs/deployment.md). Two stages: the locked
# install with uv (the Makefile's `uv sync --frozen`, without the dev group), then a
# slim runtime with only the virtualenv and the code, run as a non-root user.
#
#   docker build -t market-data .
#   docker run --rm -p 8004:8004 -e ALPACA_API_KEY=... -e ALPACA_SECRET_KEY=... \
#       -e REDIS_HOST=redis market-data
#
# Not built on the machine this was written on (no container daemon there); its install
# and run commands are checked in a fresh virtualenv by tests/deploy/.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The uv the Makefile pins (UV_VERSION), so the lock file is read the same way.
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.9
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3
COPY README.md LICENSE ./
COPY libs ./libs
COPY apps ./apps
# The project itself as a regular (not editable) install: the venv stands on its own.
RUN uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python3

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 market-data \
    && useradd --system --uid 10001 --gid market-data --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin market-data
COPY --from=build /app/.venv /app/.venv
WORKDIR /app
# SERVICE_HOST: the service binds 127.0.0.1 unless told otherwise; inside a container
# that would be unreachable, so the image listens on every interface of its own network
# namespace. Everything else comes from the environment (README, Configuration).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE_HOST=0.0.0.0 \
    PORT=8004
USER 10001:10001
EXPOSE 8004
# SIGTERM: the service stops streaming, flushes, hands the lease over and exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8004')}/health/live\", timeout=2)"]
CMD ["market-data", "serve"]
