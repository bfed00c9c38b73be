# The exchange: developer entry points. Tools come from the Go module proxy
# and run through `go tool`; nothing needs to be installed first.
# Every build uses Go 1.27.3, which fixes standard-library vulnerabilities
# (crypto/x509, net/http, html/template) that Go 1.26.8 has; the go command
# fetches it from the module proxy on first use.
export GOTOOLCHAIN := go1.27.3

GO      ?= go
BUF     := $(GO) tool -modfile=tools/go.mod buf
GRPCURL := $(GO) tool -modfile=tools/go.mod grpcurl
STATICCHECK := $(GO) tool -modfile=tools/go.mod staticcheck

.PHONY: fuzz fuzz-short model-check all build generate lint breaking check-generated vuln test test-short crash run bench bench-one-fsync bench-go clean

# The Go vulnerability database, as a pinned module version built into a
# local index, so govulncheck runs without network access beyond the proxy.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB_DIR     := $(CURDIR)/.cache/vulndb-$(VULNDB_VERSION)

all: build

## build: compile exchanged and exchangectl into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## generate: regenerate Go code from the .proto files
generate:
	$(BUF) generate

## lint: buf lint on the API; go vet, staticcheck and gofmt on the Go code
lint:
	$(BUF) lint
	$(GO) vet ./...
	$(GO) vet -tags exchange_experiment_one_fsync ./store/
	$(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## breaking: buf breaking against the latest release tag (v*) reachable from HEAD
## (nothing to compare before the first); CHANGELOG.md lists accepted breaks
breaking:
	@tag=$$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null); \
	  if [ -z "$$tag" ]; then echo "no release tag yet: nothing to check for breaking changes"; \
	  else echo "buf breaking against $$tag"; $(BUF) breaking --against ".git#tag=$$tag"; fi

## vuln: govulncheck against an offline copy of the Go vulnerability database
vuln: $(VULNDB_DIR)/index/db.json
	$(GO) tool -modfile=tools/go.mod govulncheck -db file://$(VULNDB_DIR) ./...

$(VULNDB_DIR)/index/db.json:
	@src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$src" || { echo "cannot download golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; }; \
	  rm -rf $(VULNDB_DIR) && $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns $$src/data/osv -out $(VULNDB_DIR)

## check-generated: fail when committed generated code differs from a fresh generation
check-generated:
	./scripts/check-generated.sh

# The packages whose tests run longest, named first to go test so that
# they start first and the short ones fill the other slot around them:
# listed in the order of ./... they started last and ran alone at the end.
# ./... still runs every package, each once.
SLOW_TEST_PACKAGES := ./server/ ./e2e/ ./store/ ./bench/cmd/exchange-bench/ ./rowfile/ ./client/

## test: everything CI runs: lint, generated-code check, all tests
test: lint breaking check-generated vuln
	@# The store's suite again on its other engine: a three-member etcd
	@# cluster the suite starts on loopback (store/engine_test.go). Without
	@# the race detector, which the first run already applied to the same
	@# code (and ./store/kv/etcdkv to the engine): with it this pass takes
	@# minutes of round trips instead of 25 seconds. It waits on those
	@# round trips far more than it computes (a minute, a third of it on
	@# the CPU), so it runs beside the race-detector run, its output
	@# printed after that run's; either failing fails the target.
	@etcdlog=$$(mktemp); \
	  echo '$(GO) test -count=1 -timeout 10m ./store/ -args -store.engine=etcd (beside the next)'; \
	  $(GO) test -count=1 -timeout 10m ./store/ -args -store.engine=etcd > $$etcdlog 2>&1 & etcd=$$!; \
	  echo '$(GO) test -race -count=1 -timeout 15m $(SLOW_TEST_PACKAGES) ./...'; \
	  $(GO) test -race -count=1 -timeout 15m $(SLOW_TEST_PACKAGES) ./...; race=$$?; \
	  wait $$etcd; etcdrc=$$?; \
	  echo "== the store's suite on etcd (exit $$etcdrc):"; cat $$etcdlog; rm -f $$etcdlog; \
	  [ $$race -eq 0 ] && [ $$etcdrc -eq 0 ]
	@# Latency under attack is measured without the race detector, which
	@# slows every call several times over (server/request_cost_test.go),
	@# and alone: nothing else runs beside it.
	$(GO) test -count=1 -run '^TestAttackersDoNotSlowAnotherAgency$$' ./server/
	@$(MAKE) --no-print-directory fuzz-short

## test-short: Go tests only, for the inner loop
test-short:
	$(GO) test -count=1 ./...

## crash: the crash harness's long run: CRASH_CYCLES kill -9 cycles (default 100); CRASH_SEED repeats a run
CRASH_CYCLES ?= 100
crash:
	CRASH_CYCLES=$(CRASH_CYCLES) $(GO) test -count=1 -timeout 2h -v -run '^TestCrashHarness$$' ./e2e/

## fuzz: every fuzz target for FUZZTIME each (long run: make fuzz FUZZTIME=10m FUZZMINIMIZE=30s);
## crashers land in <package>/testdata/fuzz and are replayed by every go test
FUZZTIME ?= 10m
FUZZMINIMIZE ?= 30s
FUZZ_TARGETS := server:FuzzValidateRequests server:FuzzIngestReferrals server:FuzzIngestRows store:FuzzRowKey store:FuzzPageToken
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $${t#*:} ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./$${t%%:*}/; \
	done

## fuzz-short: every fuzz target for a few seconds, as make test does
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=4s FUZZMINIMIZE=2s

## model-check: the randomized isolation check, long (MODEL_STEPS steps, MODEL_SEED to repeat a run)
MODEL_STEPS ?= 2000
model-check:
	EXCHANGE_MODEL_STEPS=$(MODEL_STEPS) $(if $(MODEL_SEED),EXCHANGE_MODEL_SEED=$(MODEL_SEED)) $(GO) test -count=1 -timeout 2h -v -run '^TestIsolationRandomModelCheck$$' ./server/

## run: start exchanged on 127.0.0.1 with ./exchange-data
run:
	$(GO) run ./cmd/exchanged

## bench: the exchange against a no-op gRPC server (transport ceiling), raw
## bbolt (storage ceiling) and etcd, each a separate process, alternating
## rounds, ratios printed side by side (BENCHMARKS.md); 11-18 minutes
## with the replicated workload (two replicas on a 3-member etcd cluster).
## The first run also builds etcd from the module proxy (bench/etcd).
## BENCH_FLAGS passes flags, e.g. BENCH_FLAGS='--only writes --rounds 5'.
BENCH_BIN   := $(CURDIR)/bin/bench
BENCH_FLAGS ?=
bench:
	$(GO) build -o $(BENCH_BIN)/ ./cmd/exchanged ./bench/cmd/exchange-bench ./bench/cmd/noop-server
	cd bench/etcd && $(GO) build -o $(BENCH_BIN)/etcd go.etcd.io/etcd/server/v3 && $(GO) build -o $(BENCH_BIN)/ ./cmd/etcd-load
	$(BENCH_BIN)/exchange-bench --bin $(BENCH_BIN) --out $(BENCH_BIN)/results.md $(BENCH_FLAGS)

## bench-one-fsync: the writes workload against an exchanged built with
## -tags exchange_experiment_one_fsync (one fdatasync per commit, NOT
## durable): the most a write-ahead log could give single writes
## (BENCHMARKS.md). Run `make bench BENCH_FLAGS='--only writes'` beside it.
ONE_FSYNC_BIN := $(CURDIR)/bin/bench-one-fsync
bench-one-fsync:
	$(GO) build -o $(ONE_FSYNC_BIN)/ ./bench/cmd/exchange-bench ./bench/cmd/noop-server
	$(GO) build -tags exchange_experiment_one_fsync -o $(ONE_FSYNC_BIN)/ ./cmd/exchanged
	cd bench/etcd && $(GO) build -o $(ONE_FSYNC_BIN)/etcd go.etcd.io/etcd/server/v3 && $(GO) build -o $(ONE_FSYNC_BIN)/ ./cmd/etcd-load
	$(ONE_FSYNC_BIN)/exchange-bench --bin $(ONE_FSYNC_BIN) --out $(ONE_FSYNC_BIN)/results.md --only writes $(BENCH_FLAGS)

## bench-go: the in-process Go benchmarks of the server package (quick, no references)
bench-go:
	$(GO) test -run '^$$' -bench 'CreateReferral|BatchCreateReferrals' -benchtime 2000x ./server/
	$(GO) test -run '^$$' -bench PullMillionRows -benchtime 1x -timeout 30m ./server/

clean:
	rm -rf bin/

## demo: the newcomer's tour (demo/tour.sh): a throw-away server, the seed
## document's agencies, referrals, a joint dataset and inception-stage plans;
## it ends by printing the dashboard's URL and keeps both up until Ctrl-C
.PHONY: demo
demo: build
	EXCHANGE_BIN=$(CURDIR)/bin DEMO_DASHBOARD=wait bash demo/tour.sh
