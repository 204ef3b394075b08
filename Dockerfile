# Four images from one build stage, for any platform BuildKit is asked for,
# cross-compiled on the build machine's own platform (Go needs no emulation):
#
#   jwt-sidecar (the default target)  /jwt-sidecar only: what runs beside your app
#   injector                          /jwt-sidecar-injector only: the Kubernetes webhook
#   key-relay                         /jwt-key-relay only: the chart's key relay (relay.enabled)
#   dev                               every binary under cmd/ at /<name>: the dev token
#                                     service, the demo app, the load generator, the
#                                     sidecar and the injector (the compose stack, examples)
#
#   V=$(git describe --tags --always)
#   DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$V -t ghcr.io/jwt-sidecar/jwt-sidecar:${V#v} .
#   DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$V --target injector -t ghcr.io/jwt-sidecar/jwt-sidecar-injector:${V#v} .
#   DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$V --target key-relay -t ghcr.io/jwt-sidecar/jwt-key-relay:${V#v} .
#   DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$V --target dev -t ghcr.io/jwt-sidecar/jwt-sidecar-dev:${V#v} .
#   docker buildx build --platform linux/amd64,linux/arm64 ...   # both architectures
#
# No frontend "syntax" directive: it would pull an image. The cache mounts need
# BuildKit. CI, which reaches no registry, builds on local stand-ins of both
# base images (.ci/standins).

# The base of the four images. Only CI sets it: it reaches no registry, and
# Docker's classic image store keeps one platform per tag, so the arm64 build
# names the arm64 stand-in (.ci/standins) here.
ARG RUNTIME_BASE=gcr.io/distroless/static:nonroot

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit from --platform (default: the builder's own).
ARG TARGETOS TARGETARCH
# Every folder under cmd/ becomes one static binary in /out.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/...

# dev: every binary the build stage made, at /<name>: a new folder under cmd/
# needs no line here. docker-compose.yml and deploy/examples run the dev tools
# from it with `entrypoint:` or `command:`.
FROM ${RUNTIME_BASE} AS dev
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jwt-sidecar-dev" \
      org.opencontainers.image.description="jwt-sidecar with its development tools: a token service, a demo app, a load generator and the injector" \
      org.opencontainers.image.source="https://github.com/jwt-sidecar/jwt-sidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/ /
# distroless's nonroot user; the chart's securityContext uses the same IDs.
USER 65532:65532
EXPOSE 7070 7071
ENTRYPOINT ["/jwt-sidecar"]

# injector: the admission webhook alone; the chart's Deployment runs it.
FROM ${RUNTIME_BASE} AS injector
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jwt-sidecar-injector" \
      org.opencontainers.image.description="The Kubernetes mutating admission webhook that injects jwt-sidecar" \
      org.opencontainers.image.source="https://github.com/jwt-sidecar/jwt-sidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/jwt-sidecar-injector /jwt-sidecar-injector
USER 65532:65532
# 8443 the webhook (TLS), 8081 its admin endpoints.
EXPOSE 8443 8081
ENTRYPOINT ["/jwt-sidecar-injector"]

# The key relay (jwt-key-relay, the chart's relay.enabled): only its binary.
FROM ${RUNTIME_BASE} AS key-relay
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jwt-key-relay" \
      org.opencontainers.image.description="Fetches each issuer's keys once and serves them to the jwt-sidecars of a cluster" \
      org.opencontainers.image.source="https://github.com/jwt-sidecar/jwt-sidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/jwt-key-relay /jwt-key-relay
USER 65532:65532
# 8080 the key sets, 8081 its admin endpoints.
EXPOSE 8080 8081
ENTRYPOINT ["/jwt-key-relay"]

# jwt-sidecar: the proxy alone, the production image. Last, so that a build
# without --target makes it.
FROM ${RUNTIME_BASE} AS jwt-sidecar
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jwt-sidecar" \
      org.opencontainers.image.description="A reverse proxy that verifies bearer JWTs locally" \
      org.opencontainers.image.source="https://github.com/jwt-sidecar/jwt-sidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/jwt-sidecar /jwt-sidecar
USER 65532:65532
# 7070 the proxy (http-auth), 7071 its admin endpoints (http-admin).
EXPOSE 7070 7071
ENTRYPOINT ["/jwt-sidecar"]
