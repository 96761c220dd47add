# The migration runner: spin-local (its `migrate` subcommand applies
# migrations/ with refinery and records them in refinery_schema_history).
#   docker build -f deploy/migrate.Dockerfile -t ghcr.io/<org>/tracking-backbone-migrate:<version> .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p spin-local

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/spin-local /usr/local/bin/spin-local
COPY migrations /migrations
USER 65534
ENTRYPOINT ["/usr/local/bin/spin-local"]
CMD ["migrate", "--dir", "/migrations"]
