# The customer-sync pipeline as a container: `pipeline serve` once it exists (issue 5);
# until then the default command runs one pass with the mounted configuration.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 pipeline && mkdir -p /state /config \
    && chown pipeline /state
COPY --from=build /install /usr/local
USER pipeline
WORKDIR /state
VOLUME ["/state"]
ENTRYPOINT ["pipeline"]
CMD ["run", "--config", "/config/pipeline.toml"]
