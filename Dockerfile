# The worker image. Dependencies come from requirements.lock (every version pinned, every file
# hashed; `make lock` regenerates it), so an image built later gets the same versions. The
# packages are built into wheels and installed normally: the migrations travel inside the worker's.
# Base: python 3.11 (the lock's target) on Debian bookworm, pinned by tag and digest.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS deps

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# This layer changes only with the lock. The lock also pins the build backend (setuptools), so
# the wheel below builds without fetching anything unpinned.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes --no-deps -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# The two wheels: twap-schemas (the wire contract, from schemas/) and the worker, which depends
# on it (.dockerignore keeps the context small).
FROM deps AS wheel
COPY . /src
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /dist /src/schemas /src

FROM deps
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist

# An unprivileged user; its home holds the SQLite file when TWAP_DATABASE_URL is left default.
RUN groupadd --system --gid 10001 twap \
    && useradd --system --uid 10001 --gid twap --home-dir /var/lib/twap --create-home \
       --shell /usr/sbin/nologin twap
USER 10001:10001
WORKDIR /var/lib/twap

# /metrics, /healthz and /readyz on TWAP_HTTP_PORT (default 9464), from outside the container.
ENV TWAP_LOG_JSON=true \
    TWAP_HTTP_HOST=0.0.0.0
EXPOSE 9464

# Healthy when RabbitMQ and the database answer, a worker consumes the requests queue and this
# worker's /readyz says ready (a hot standby reports "standby" there, so it shows unhealthy).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 CMD ["twap", "health"]

CMD ["sh", "-c", "twap migrate && exec twap worker"]
