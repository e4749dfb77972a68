# syntax=docker/dockerfile:1
# An ECS (Fargate) image of one service binary, alone on a distroless base:
#
#   docker buildx build --platform linux/arm64 -f deploy/docker/service.Dockerfile \
#     --build-arg PACKAGE=onboarding-api --build-arg BIN=onboarding-api -t onboarding-api .
#
# The API services: PACKAGE=onboarding-api BIN=onboarding-api, PACKAGE=events-api BIN=nedlia-api,
# PACKAGE=shop-catalog BIN=shop-catalog, PACKAGE=shop-checkout BIN=shop-checkout. The collector
# sidecar is the throughline binary: PACKAGE=throughline BIN=throughline, run as
# `collector --no-store --export-otlp …` (deploy/aws/*.yaml give the command). The binary is built
# on Debian 12 and runs on Debian 12's glibc (distroless/cc-debian12).

ARG RUST_VERSION=1.95

FROM public.ecr.aws/docker/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
ARG PACKAGE=onboarding-api
ARG BIN=onboarding-api
RUN cargo build --release --locked -p "$PACKAGE" --bin "$BIN" \
 && cp "target/release/$BIN" /service

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /service /usr/local/bin/service
# distroless's nonroot user, by number (the task may check runAsNonRoot)
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
