# Vigil node agent image. Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t ghcr.io/vigil-sre/vigil-agent:0.1.0 .
# Stage 1 builds the eBPF object (nightly, rust-src, bpf-linker linked against the nightly's
# LLVM: `cargo xtask setup --toolchain-only` does it) and the agent, which embeds the object.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo xtask setup --toolchain-only \
 && cargo xtask build-ebpf \
 && cargo build --release --locked -p node-agent --bin vigil-agent

# Stage 2: glibc and nothing else. The agent runs as root with the capabilities the
# DaemonSet grants; it needs no shell, no package manager.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/target/release/vigil-agent /usr/local/bin/vigil-agent
EXPOSE 9470
ENTRYPOINT ["/usr/local/bin/vigil-agent"]
