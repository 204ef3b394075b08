# One image for every binary under cmd/, each at /<name>: the proxy (the
# ENTRYPOINT), the admission webhook injector, the development token service,
# the demo app and whatever else cmd/ holds. The Helm chart runs this image as
# ghcr.io/jwt-sidecar/jwt-sidecar:<appVersion>; docker-compose.yml builds it
# as :dev and picks a binary per service with `entrypoint:`.
#
#   DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(git describe --tags --always) \
#     -t ghcr.io/jwt-sidecar/jwt-sidecar:dev .
#
# No frontend "syntax" directive: it would pull an image. The cache mounts need BuildKit.
# CI, which reaches no registry, builds it on local stand-ins of both base
# images (.ci/standins).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Every folder under cmd/ becomes one static binary in /out.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/...

FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jwt-sidecar" \
      org.opencontainers.image.description="A reverse proxy that verifies bearer JWTs locally, its Kubernetes sidecar injector, a development token service and a demo app" \
      org.opencontainers.image.source="https://github.com/jwt-sidecar/jwt-sidecar" \
      org.opencontainers.image.url="https://github.com/jwt-sidecar/jwt-sidecar" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# Every binary the build stage made, at /<name>: a new folder under cmd/
# needs no line here.
COPY --from=build /out/ /
# distroless's nonroot user; the chart's securityContext uses the same IDs.
USER 65532:65532
# 7070 the proxy (http-auth), 7071 its admin endpoints (http-admin).
EXPOSE 7070 7071
ENTRYPOINT ["/jwt-sidecar"]
