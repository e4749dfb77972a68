# syntax=docker/dockerfile:1
# A Lambda container image of one worker, on Lambda's provided.al2023 base, ARM64 or x86_64:
#
#   docker buildx build --platform linux/arm64 -f deploy/docker/lambda.Dockerfile \
#     --build-arg PACKAGE=onboarding-lambda --build-arg BIN=onboarding-lambda -t onboarding-lambda .
#
# (BIN of the events workers: nedlia-file-generator, nedlia-validator, nedlia-notifier, all in
# PACKAGE=events-workers.) The build stage runs on the build machine's own platform and
# cross-compiles with cargo-lambda and zig (no emulation), linking against glibc 2.17 so the binary
# runs on al2023's 2.34. `--target function-with-extension` adds the throughline collector as an
# external Lambda extension (/opt/extensions/throughline-collector); it needs `throughline
# collector --lambda-extension`, which is not built yet (issue #17): deploy the default target.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM public.ecr.aws/docker/library/rust:${RUST_VERSION}-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
# cargo-lambda brings zig from PyPI; both targets' standard libraries for either --platform.
RUN python3 -m venv /opt/cargo-lambda \
 && /opt/cargo-lambda/bin/pip install --no-cache-dir cargo-lambda==1.9.2 \
 && rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu
ENV PATH=/opt/cargo-lambda/bin:$PATH
WORKDIR /src
COPY . .
ARG PACKAGE=onboarding-lambda
ARG BIN=onboarding-lambda
ARG TARGETARCH
RUN case "$TARGETARCH" in \
      arm64) arch=--arm64 ;; \
      amd64) arch=--x86-64 ;; \
      *) echo "TARGETARCH $TARGETARCH: Lambda runs arm64 or amd64" >&2; exit 1 ;; \
    esac \
 && cargo lambda build --release "$arch" -p "$PACKAGE" --bin "$BIN" \
 && cp "target/lambda/$BIN/bootstrap" /bootstrap

# The throughline binary, for the collector extension.
FROM build AS extension-build
RUN case "$TARGETARCH" in arm64) arch=--arm64 ;; *) arch=--x86-64 ;; esac \
 && cargo lambda build --release "$arch" -p throughline --bin throughline \
 && cp target/lambda/throughline/bootstrap /throughline

FROM public.ecr.aws/lambda/provided:al2023 AS function-with-extension
COPY --from=build /bootstrap ${LAMBDA_RUNTIME_DIR}/bootstrap
COPY --from=extension-build /throughline /opt/throughline/throughline
COPY deploy/docker/throughline-collector-extension /opt/extensions/throughline-collector
CMD ["bootstrap"]

# The default target: the function alone (it flushes its own spans before each response).
FROM public.ecr.aws/lambda/provided:al2023 AS function
COPY --from=build /bootstrap ${LAMBDA_RUNTIME_DIR}/bootstrap
CMD ["bootstrap"]
