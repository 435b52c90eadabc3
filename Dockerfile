# syntax=docker/dockerfile:1
# The kreflex image: `docker build -t kreflex:latest .`
#
# Build stage: deploy/build-image.sh, the script CI runs too (.ci/run), so the image is built
# by exactly the commands CI checks: the release binary (`cargo build --release --locked`),
# the example plugin and the generated RBAC of deploy/.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN deploy/build-image.sh

# Final stage: glibc, libgcc and CA certificates, no shell, no package manager; user 65532.
# The release binary links only libc, libm and libgcc_s (see the README), all in this base;
# wasmtime, zstd and TLS (rustls) are linked in.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kreflex /usr/local/bin/kreflex
USER 65532:65532
# Precompiled plugin artifacts: mount a writable emptyDir here (the root file system is
# read-only in deploy/).
ENV KREFLEX_CACHE_DIR=/var/cache/kreflex
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/kreflex"]
# `docker run kreflex` runs the engine on /plugins; a Deployment's `args` replace this
# (deploy/base/deployment.yaml: `run --plugins /plugins --leader-elect ...`).
CMD ["run", "--plugins", "/plugins"]
