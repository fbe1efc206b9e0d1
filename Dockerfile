# syntax=docker/dockerfile:1
# Container image of relay-server (and relay-verify, for checking export packages in place).
#
#   docker build -t gims-relay-server .
#   docker run --rm gims-relay-server --help
#
# Stage 1 builds release binaries with the locked dependency set (installed stripped, about a sixth
# of their size with symbols and line tables); stage 2 is a slim Debian
# runtime with the binaries, CA roots and a non-root user, nothing else.

FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
COPY . .
# Storage providers are cargo features of relay-server (the default build is local only). The
# image carries all four so one image serves compose (selfhosted) and the AWS, GCP and Azure
# Terraform modules; narrow it with --build-arg RELAY_FEATURES=... (a provider left out is
# refused at start-up, naming its feature).
ARG RELAY_FEATURES=relay-server/selfhosted,relay-server/aws,relay-server/gcp,relay-server/azure
RUN cargo build --release --locked -p relay-server -p relay-verify \
        --features "$RELAY_FEATURES" \
    && install -s -D -m 0755 target/release/relay-server /out/relay-server \
    && install -s -D -m 0755 target/release/relay-verify /out/relay-verify

FROM debian:bookworm-slim AS runtime
# CA roots for TLS to Postgres, S3 and NTP-less HTTPS endpoints; pinned by the Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --home-dir /var/lib/relay --create-home \
       --shell /usr/sbin/nologin relay \
    && install -d -o relay -g relay -m 0700 /var/lib/relay/data
COPY --from=build /out/relay-server /out/relay-verify /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/relay
ENV RELAY_DATA_DIR=/var/lib/relay/data \
    RELAY_LISTEN=0.0.0.0:8471
EXPOSE 8471
# /healthz over plain HTTP with bash's /dev/tcp: no curl in the image. With TLS on the listener,
# use the orchestrator's HTTPS probe instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8471 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["relay-server"]
CMD ["run"]
