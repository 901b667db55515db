# kubegate: one process, SQLite in /data. Runs `kubegate serve` (Slack HTTP mode on :3000).
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements-runtime.lock pyproject.toml README.md ./
RUN python -m venv /opt/kubegate \
    && /opt/kubegate/bin/pip install --no-cache-dir -r requirements-runtime.lock
COPY bot ./bot
COPY commands ./commands
COPY approvals ./approvals
COPY playbooks ./playbooks
RUN /opt/kubegate/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home kubegate
COPY --from=build /opt/kubegate /opt/kubegate
ENV PATH=/opt/kubegate/bin:$PATH \
    KUBEGATE_DB=/data/kubegate.db \
    KUBEGATE_BACKUP_DIR=/data/backups \
    KUBEGATE_PORT=3000
USER 10001
WORKDIR /data
EXPOSE 3000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz')"
CMD ["kubegate", "serve"]
