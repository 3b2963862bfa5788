# syntax=docker/dockerfile:1.7
# The three ChatSDK services, one small image each, built from one compile:
#   docker build --target command-api -t REGISTRY/command-api:TAG .     (likewise projector, query-api)
# Runs as uid 10001 (never root); listens on 8080 (/healthz, /readyz, /metrics); configured by CHATSDK_* variables
# and the TOML file named by CHATSDK_CONFIG (infra/k8s mounts it from the secret).

ARG RUST_VERSION=1.95

# Build: the full Rust image has what librdkafka's build needs (C toolchain, perl, OpenSSL and zlib headers).
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# sqlx checks its queries against the committed .sqlx/ data: no database at build time.
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
COPY . .
# Cache mounts keep the registry and the target dir between builds without putting them in a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p command-api -p projector -p query-api \
    && mkdir -p /out \
    && cp target/release/command-api target/release/projector target/release/query-api /out/

# Runtime: the shared libraries the binaries link (glibc, OpenSSL for Kafka's TLS, zlib), CA certificates for
# MSK, RDS and S3, and nothing else — no shell tools beyond Debian's base, no compiler, no sources.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 chatsdk \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin chatsdk
# The CA bundle of Amazon RDS: the projector verifies its direct TLS connection to RDS with it
# (sslmode=verify-full&sslrootcert=… in infra/k8s). Public, fetched at build time.
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
USER 10001:10001
ENV CHATSDK_HTTP__BIND=0.0.0.0:8080 \
    CHATSDK_LOG__FORMAT=json
EXPOSE 8080

FROM runtime AS command-api
COPY --from=build /out/command-api /usr/local/bin/command-api
ENTRYPOINT ["/usr/local/bin/command-api"]

FROM runtime AS projector
COPY --from=build /out/projector /usr/local/bin/projector
ENTRYPOINT ["/usr/local/bin/projector"]

FROM runtime AS query-api
COPY --from=build /out/query-api /usr/local/bin/query-api
ENTRYPOINT ["/usr/local/bin/query-api"]
