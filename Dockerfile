# rfbackup's container image: the CLI, PostgreSQL client tools for majors 15 to 17 (PGDG),
# redis-tools and age. Runs as the unprivileged user 10001 (the Kubernetes manifests'
# runAsUser); the entrypoint is rfbackup, so `docker run IMAGE backup postgres` works.
# The Debian packages come from scripts/packages.txt, the list scripts/bootstrap.sh installs.

FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.5.11 /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# The locked runtime dependencies, then rfbackup itself, into a self-contained venv.
RUN uv venv /opt/rfbackup \
    && uv export --locked --no-dev --no-emit-project --format requirements-txt > /tmp/requirements.txt \
    && uv pip install --python /opt/rfbackup/bin/python --no-cache --compile-bytecode -r /tmp/requirements.txt \
    && uv pip install --python /opt/rfbackup/bin/python --no-cache --no-deps .

FROM python:3.11-slim-bookworm
COPY scripts/packages.txt scripts/packages.sh /tmp/packages/
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends $(sh /tmp/packages/packages.sh image); \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/* /tmp/packages
COPY --from=build /opt/rfbackup /opt/rfbackup
RUN groupadd --gid 10001 rfbackup \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin rfbackup
ENV PATH=/opt/rfbackup/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["rfbackup"]
CMD ["--help"]
