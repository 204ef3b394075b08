# One image for every binary under cmd/: the proxy (the ENTRYPOINT), the
# admission webhook injector, the development token service and the demo app.
# The Helm chart runs this image as ghcr.io/jwt-sidecar/jwt-sidecar:<appVersion>.
#
#   DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(git describe --tags --always) \
#     -t ghcr.io/jwt-sidecar/jwt-sidecar:dev .
#
# No frontend "syntax" directive: it would pull an image. The cache mounts need BuildKit.

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
COPY --from=build /out/jwt-sidecar /jwt-sidecar
COPY --from=build /out/jwt-sidecar-injector /jwt-sidecar-injector
COPY --from=build /out/jwt-issuer /jwt-issuer
COPY --from=build /out/echo-upstream /echo-upstream
# distroless's nonroot user; the chart's securityContext uses the same IDs.
USER 65532:65532
# 7070 the proxy (http-auth), 7071 its admin endpoints (http-admin).
EXPOSE 7070 7071
ENTRYPOINT ["/jwt-sidecar"]
