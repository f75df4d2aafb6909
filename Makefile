# scraft: make test is what CI runs; make check is what a change must pass.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10s
BENCH    ?= .
BENCHTIME ?= 1s

.PHONY: all build test fmt-check vet check tidy-check proto proto-check contracts contracts-check fuzz bench bench-vs-etcd chaos ui-test clean

all: build

build:
	$(GO) build -buildvcs=auto -o bin/scraft ./cmd/scraft

## test: gofmt check, go vet, and the race-enabled short test suite (what CI runs).
## The integration tests build and run the scraft binary, which Go's test
## cache does not see: they always run.
UNIT_PKGS = $(shell $(GO) list $(PKGS) | grep -v '/integration$$')
test: fmt-check vet
	$(GO) test -race -short -timeout 15m $(UNIT_PKGS)
	$(GO) test -race -short -timeout 15m -count=1 ./integration

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v node_modules)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## vet also checks the test-only misbehaviour build (cluster/misbehave_tag.go).
vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags scraft_misbehave ./cluster ./transport ./cmd/scraft

## check: test, plus go.mod tidy and generated code (protobuf, contracts) up to date
check: test tidy-check proto-check contracts-check

tidy-check:
	@cp go.mod /tmp/scraft-go.mod.bak; cp go.sum /tmp/scraft-go.sum.bak; \
	$(GO) mod tidy; \
	if ! git diff --quiet -- go.mod go.sum; then \
	  echo "go.mod/go.sum are not tidy:"; git --no-pager diff -- go.mod go.sum; \
	  cp /tmp/scraft-go.mod.bak go.mod; cp /tmp/scraft-go.sum.bak go.sum; exit 1; fi

proto:
	bash scripts/proto.sh

proto-check: proto
	@git diff --exit-code --stat -- '*.pb.go' || { echo "generated protobuf code is stale: run make proto"; exit 1; }

contracts:
	bash contracts/build.sh

contracts-check:
	bash contracts/build.sh --check

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## bench: every benchmark once (figures go to docs/BENCHMARKS.md)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem $(PKGS)

## bench-vs-etcd: a 3-member etcd (the version pinned in bench/etcd/go.mod,
## built once into bin/etcd-VERSION) plain and with TLS, alternated with
## BenchmarkCommit at 64 and 256 clients; one table of the ratios, every run's
## figures in bin/bench-vs-etcd/TIME/results.json. About 10 minutes; QUICK=1
## runs one round of 4 s runs. BENCH_VS_ETCD_FLAGS passes more flags
## (-rounds, -seconds, -clients, -json FILE).
bench-vs-etcd:
	cd bench/etcd && $(GO) run . -repo $(CURDIR) $(if $(QUICK),-quick) $(BENCH_VS_ETCD_FLAGS)

## chaos: the long multi-process and fault-injection suites
## (the soak: SOAK_ROUNDS rounds of mixed faults, SCRAFT_SOAK_SEED to repeat one;
## the honest run: SCRAFT_HONEST_ROUNDS rounds, SCRAFT_HONEST_SEED to repeat one;
## the chain conformance suite against a 4-validator CometBFT network, every
## scenario in real chain time: about 6 minutes; a MoveCraft world of 100
## in-process members through a candidate's and the leader's stop: 2-3 minutes;
## TestChaosNetemRegions, 7 node processes in network namespaces three
## regions apart, as root: under a minute; make test runs it with -short)
HONEST_ROUNDS ?= 40
SOAK_ROUNDS ?= 100
chaos:
	SCRAFT_SOAK_ROUNDS=$(SOAK_ROUNDS) $(GO) test -race -timeout 60m -run 'Chaos|Soak|Drill' -v ./integration/...
	SCRAFT_HONEST_ROUNDS=$(HONEST_ROUNDS) $(GO) test -timeout 60m -count=1 -run 'TestHonestNeverAccused' -v ./integration
	$(GO) test -timeout 30m -count=1 -run 'TestConformance' ./settlement/comet
	$(GO) test -timeout 30m -count=1 -run 'TestDelegates100Members' ./cluster

## ui-test: the web console in headless Chromium, against scraft dev and
## against node processes through a leader's kill; it installs Chromium
## (scripts/install-chromium.sh) when missing and saves the screenshots to
## docs/img. Without Chromium the tests skip, saying so. Not in make test.
ui-test:
	bash scripts/install-chromium.sh || echo "could not install chromium: the browser tests will skip"
	mkdir -p docs/img
	SCRAFT_UI_SHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -timeout 10m -run 'TestConsoleBrowser' -v ./integration

clean:
	rm -rf bin
