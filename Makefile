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
	./cmd/jwt-issuer:FuzzClientEndpoints ./login:FuzzSessionCookie ./login:FuzzDecodeSession ./login:FuzzSafeReturn \
	./revocation:FuzzParse ./dpop:FuzzParseProof

.PHONY: all build demo compare test check fmt vet staticcheck fuzz bench bench-go bench-load ci clean

all: check test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## demo: build and run issuer, a demo upstream and the sidecar on 127.0.0.1
demo: build
	$(GO) run ./tools/demo -bin bin

## compare: stateless JWT vs token introspection on 127.0.0.1, through an issuer
## outage; prints the table and writes .bench/compare.json. COMPARE_FLAGS=-quick
## for short phases.
compare: build
	$(GO) run ./tools/compare -bin bin -json .bench/compare.json $(COMPARE_FLAGS)

## test: every test: the module's with the race detector, then the chart's and
## the deployment files' (separate modules, so Helm, kubeconform, compose-go and
## Prometheus stay out of the binaries); test/stack brings the compose stack up
## when docker is there (DOCKER names the CLI, see README)
test:
	$(GO) test -race -count=1 -timeout 15m ./...
	cd charts/test && $(GO) test -count=1 -timeout 15m ./...
	cd test/stack && $(GO) test -count=1 -timeout 15m ./...

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

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./verifier/ ./proxy/

bench-load: build
	$(GO) run ./tools/load -bin bin -json .bench/load.json

## ci: what .ci/run runs after installing the tools
ci: check test fuzz

clean:
	rm -rf bin .demo .compare
