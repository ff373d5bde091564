# Vigil control plane image (server, CLI, evaluation tool). Build from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t ghcr.io/vigil-sre/vigil-control-plane:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p control-plane \
      --bin vigil-control-plane --bin vigil --bin vigil-eval

# Stage 2: distroless, non-root (the Deployment runs it as uid 65532 with a read-only root).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/vigil-control-plane /usr/local/bin/vigil-control-plane
COPY --from=build /src/target/release/vigil /usr/local/bin/vigil
COPY --from=build /src/target/release/vigil-eval /usr/local/bin/vigil-eval
EXPOSE 7070 8080
ENTRYPOINT ["/usr/local/bin/vigil-control-plane"]
