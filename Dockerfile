# The customer-sync pipeline as a long-running container: `pipeline serve`.
# Mount the configuration at /config/pipeline.toml, pass secrets as environment variables
# (the *_env keys of the configuration name them), keep /state on a volume.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# Fixed numeric ids: a Kubernetes securityContext names them (deploy/kubernetes/serve.yaml).
RUN groupadd --gid 10001 pipeline \
    && useradd --create-home --uid 10001 --gid 10001 pipeline \
    && mkdir -p /state /config \
    && chown pipeline:pipeline /state
COPY --from=build /install /usr/local
# Overrides of the configuration (PIPELINE__SECTION__KEY): the state lives on the volume and
# the metrics port listens on every interface of the container.
ENV PIPELINE__STATE__PATH=/state/pipeline-state.sqlite3 \
    PIPELINE__METRICS__LISTEN=0.0.0.0:9108 \
    PYTHONUNBUFFERED=1
USER pipeline
WORKDIR /state
VOLUME ["/state"]
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]
# SIGTERM (docker stop) drains in-flight work within [serve] grace_seconds, then exits 0:
# give `docker stop --time` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pipeline"]
CMD ["serve", "--config", "/config/pipeline.toml"]
