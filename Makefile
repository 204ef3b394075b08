# jwt-sidecar. `make demo` and `make test` need only Go.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Fuzz budgets are counts, not durations: with a duration, go1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when the
# time runs out mid-input (golang/go#75804, fixed in go1.27).
FUZZTIME  ?= 100000x
FUZZMINIMIZE ?= 2000x
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Fuzz targets: package and target, one pair per line of the loop below.
FUZZ := ./verifier:FuzzVerify ./verifier:FuzzIntrospectionAnswer ./policy:FuzzGlobMatch ./proxy:FuzzClaimHeaders \
	./verifier:FuzzExtract ./proxy:FuzzDropHTTP2Upgrade \
	./cmd/jwt-issuer:FuzzClientEndpoints ./login:FuzzSessionCookie ./login:FuzzDecodeSession ./login:FuzzSafeReturn \
	./revocation:FuzzParse ./dpop:FuzzParseProof ./keys:FuzzCacheHeaders ./proxy:FuzzRequestID ./config:FuzzPaths \
	./proxy:FuzzParseOriginal ./internal/tracing:FuzzTraceHeaders ./internal/atomicfile:FuzzReadEntry

# Releases: tags vMAJOR.MINOR.PATCH (CHANGELOG.md); VERSION is what git
# describe says, so an untagged build names its commit.
DIST      ?= dist
# The servers ship for Linux; the CLI tools (explain, check-config, the dev
# token service, the load generator, the demo app) for macOS too.
RELEASE_PLATFORMS := linux/amd64 linux/arm64
TOOL_PLATFORMS    := darwin/amd64 darwin/arm64
TOOLS     := jwt-sidecar jwt-issuer jwt-loadgen echo-upstream
# make peers: oauth2-proxy's version is the one tools/peers/go.mod pins.
OAUTH2_PROXY_VERSION := $(shell sed -n 's,^\tgithub.com/oauth2-proxy/oauth2-proxy/v7 \(v[^ ]*\).*,\1,p' tools/peers/go.mod)
PEERS     := direct,nginx,reverseproxy,jwt-sidecar,jwt-sidecar-nocache,oauth2-proxy
PEERS_FLAGS ?= -rounds 6

.PHONY: all help build demo compare test check fmt vet staticcheck fuzz bench bench-go bench-load peers release ci clean

all: check test

## help: this list
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); printf "  make %s\n", $$0; next } /^## / { sub(/^## /, ""); printf "      %s\n", $$0 }' $(MAKEFILE_LIST)

## build: every binary under cmd/ into bin/ (static, -trimpath)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## demo: build and run issuer, a demo upstream and the sidecar on 127.0.0.1,
## walk through 401 / 200 / tampered token / metrics, end with a short load
## run (jwt vs introspection through an issuer outage, ~15 s), then keep the
## stack up until Ctrl-C. DEMO_FLAGS=-once stops after the steps;
## DEMO_FLAGS=-compare=false skips the load run.
demo: build
	@echo "make demo: the steps, then a short load run (about 15 s; DEMO_FLAGS=-compare=false skips it)"
	$(GO) run ./tools/demo -bin bin $(DEMO_FLAGS)

## compare: stateless JWT vs token introspection on 127.0.0.1, through an issuer
## outage and a revocation, once per token-service round trip (loopback, 0.5, 2
## and 50 ms: about 4 min); prints the tables, writes .bench/compare.json and
## the picture COMPARE_SVG (.bench/compare.svg). COMPARE_FLAGS=-quick for short
## phases, e.g. COMPARE_FLAGS='-quick -rtt 2ms'.
COMPARE_SVG ?= .bench/compare.svg
compare: build
	$(GO) run ./tools/compare -bin bin -json .bench/compare.json -svg $(COMPARE_SVG) $(COMPARE_FLAGS)

## test: every test: the module's with the race detector, then the chart's and
## the deployment files' (separate modules, so Helm, kubeconform, compose-go and
## Prometheus stay out of the binaries); test/stack brings the compose stack up
## when docker is there (DOCKER names the CLI, see CONTRIBUTING.md)
test:
	$(GO) test -race -count=1 -timeout 15m ./...
	cd charts/test && $(GO) test -count=1 -timeout 15m ./...
	cd test/stack && $(GO) test -count=1 -timeout 15m ./...

## selftest-headers: every spelling of every identity header, proven never to reach the upstream
selftest-headers:
	$(GO) test -count=1 -run TestHeaderHygiene -v ./proxy

## check: formatting, vet and staticcheck
check: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd charts/test && $(GO) vet ./...
	cd test/stack && $(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...
	cd charts/test && $(GO) run $(STATICCHECK) ./...
	cd test/stack && $(GO) run $(STATICCHECK) ./...

## fuzz: a short run of every fuzz target (FUZZTIME executions each)
fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg; \
	done

## bench: Go benchmarks, then the load run against nginx and a plain proxy
bench: bench-go bench-load

## bench-go: the Go benchmarks of verifier/ and proxy/
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./verifier/ ./proxy/

## bench-load: the load run: jwt-sidecar, nginx and a plain Go ReverseProxy in
## front of one upstream, interleaved (needs wrk, nginx-light)
bench-load: build
	$(GO) run ./tools/load -bin bin -json .bench/load.json

## peers: jwt-sidecar against its peers on 127.0.0.1: oauth2-proxy (built from
## tools/peers, bearer-JWT mode), nginx and a plain Go ReverseProxy, same
## upstream, dev-issuer token and load, interleaved; prints the ratios
## (docs/performance.md). PEERS_FLAGS=-rounds 2 for a quick look.
peers: build
	cd tools/peers && CGO_ENABLED=0 $(GO) build -trimpath \
		-ldflags '-X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$(OAUTH2_PROXY_VERSION)' \
		-o $(CURDIR)/bin/oauth2-proxy github.com/oauth2-proxy/oauth2-proxy/v7
	$(GO) run ./tools/load -bin bin -subjects $(PEERS) -json .bench/peers.json $(PEERS_FLAGS)

## release: static binaries (linux/amd64, linux/arm64; the CLI tools also for
## darwin) as tar.gz archives, a CycloneDX SBOM per server binary, and
## SHA256SUMS, in dist/ (VERSION=vX.Y.Z to override git describe)
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS) $(TOOL_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=jwt-sidecar_$(VERSION)_$${os}_$${arch}; \
		pkgs=./cmd/...; case " $(TOOL_PLATFORMS) " in *" $$p "*) pkgs=$$(printf './cmd/%s ' $(TOOLS));; esac; \
		echo "release: $$name"; \
		mkdir -p $(DIST)/$$name; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/ $$pkgs; \
		cp LICENSE README.md CHANGELOG.md $(DIST)/$$name/; \
		tar -C $(DIST) --owner=0 --group=0 --numeric-owner --sort=name -czf $(DIST)/$$name.tar.gz $$name; \
		rm -rf $(DIST)/$$name; \
	done
	@set -e; for b in jwt-sidecar jwt-sidecar-injector jwt-key-relay; do \
		echo "release: SBOM of $$b"; \
		(cd tools/sbom && GOFLAGS=-mod=mod $(GO) tool cyclonedx-gomod app -json -licenses=false \
			-main cmd/$$b -output ../../$(DIST)/$${b}_$(VERSION).cdx.json ../..); \
	done
	cd $(DIST) && sha256sum *.tar.gz *.cdx.json > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

## ci: what .ci/run runs after installing the tools
ci: check test fuzz

## clean: remove what builds and runs leave behind
clean:
	rm -rf bin .demo .compare $(DIST)
