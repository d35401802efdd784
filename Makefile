# consentgate: the two commands the README promises are `make run` and
# `make test`. Everything loops over the workspace's modules.

MODULES := schemas pkg services/devbroker services/consent-sync services/enforcer services/ledger services/consentctl services/provision services/devstack e2e deploy
SERVICES := devbroker consent-sync enforcer ledger consentctl provision devstack
GO ?= go
TEST_TIMEOUT ?= 12m

.PHONY: all build images run test test-concurrency vet fmt-check tidy bench bench-ledger fuzz soak clean help

all: build

help:
	@echo "make run     start the whole pipeline on embedded defaults (broker, Redis, services, demo producer)"
	@echo "make test    vet, format check and every module's tests with -race (needs redis-server on PATH)"
	@echo "make build   build the binaries into bin/"
	@echo "make images  build every service's container image (deploy/Dockerfile; needs a Docker engine)"
	@echo "make fuzz    run each fuzz target for FUZZTIME (default 30s)"
	@echo "make bench   micro-benchmarks and the end-to-end benchmark (BENCH_EVENTS=20000 for a quick run)"
	@echo "make bench-ledger  the ledger's ingest and query benchmarks (LEDGER_BENCH_RECORDS=1000000 for a quick run)"
	@echo "make soak    the fault suite at soak size (FAULT_* knobs)"
	@echo "make clean   remove bin/ and the dev stack's data (.data/)"

build:
	@mkdir -p bin
	@for s in $(SERVICES); do echo "building bin/$$s"; $(GO) build -o bin/$$s ./services/$$s || exit 1; done

# make images: one image per service from deploy/Dockerfile (build arg
# SERVICE), tagged $(IMAGE_PREFIX)<service>:$(IMAGE_TAG). Needs a Docker
# engine with BuildKit; without one it says so and fails.
IMAGE_SERVICES := enforcer consent-sync ledger consentctl provision demo-producer
IMAGE_PREFIX ?= consentgate/
IMAGE_TAG ?= 0.1.0
DOCKER ?= docker
images:
	@command -v $(DOCKER) >/dev/null 2>&1 || { echo "make images: no '$(DOCKER)' command on this machine: install Docker (with BuildKit) to build the images; nothing was built" >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "make images: '$(DOCKER)' is installed but no Docker engine answers ($(DOCKER) info failed); nothing was built" >&2; exit 1; }
	@for s in $(IMAGE_SERVICES); do \
		echo "building $(IMAGE_PREFIX)$$s:$(IMAGE_TAG)"; \
		DOCKER_BUILDKIT=1 $(DOCKER) build -f deploy/Dockerfile --build-arg SERVICE=$$s -t $(IMAGE_PREFIX)$$s:$(IMAGE_TAG) . || exit 1; \
	done

run: build
	./bin/devstack

vet:
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

tidy:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

test: fmt-check vet
	@for m in $(MODULES); do \
		echo "== $$m"; \
		(cd $$m && $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...) || exit 1; \
	done
	@$(MAKE) --no-print-directory test-concurrency

# The concurrency-heavy packages (consent cache and store, the runner, the
# consent-sync apply loop) once more, many times over: a race that shows up
# once in twenty runs is a red build, not a lucky green.
RACE_COUNT ?= 20
RUNNER_RACE_COUNT ?= 3
# The consent tests that start Redis Clusters or TLS servers with ACL users
# (seconds each, mostly process start-up) run once with -race in the main
# pass and are left out of the RACE_COUNT repetitions, which would take ten
# minutes more; make soak repeats them 20 times.
CLUSTER_TESTS := ^Test(ACL|Cluster|Review(ACL|Cluster|Cache))
test-concurrency:
	@echo "== concurrency: -race -count=$(RACE_COUNT)"
	cd pkg && $(GO) test -race -count=$(RACE_COUNT) -timeout $(TEST_TIMEOUT) -skip '$(CLUSTER_TESTS)' ./consent/
	cd services/consent-sync && $(GO) test -race -count=$$(( $(RACE_COUNT) / 4 )) -timeout $(TEST_TIMEOUT) ./internal/apply/
	cd pkg && $(GO) test -race -count=$(RUNNER_RACE_COUNT) -timeout $(TEST_TIMEOUT) -run 'Runner|Pipeline|WriteAll' ./stream/

# make bench: the hot path's micro-benchmarks (go test -bench, -benchmem, a
# short BENCHTIME), then the end-to-end benchmark (e2e/bench): per policy
# (deploy/policy.yaml and e2e/bench/policy.yaml) enforcer events/s against a
# matched and a 1:1 passthrough process, CPU s per 1,000 events from
# /proc/<pid>/stat, then latency at half rate, withdrawal latency,
# consent-sync and peak RSS, with issue 11's targets as MET/MISSED.
# BENCH_EVENTS=20000 makes a quick run (BENCH_SUBJECTS=20000 BENCH_PACED=10s
# quicker still); every BENCH_* setting: go run ./e2e/bench --help. Method
# and figures in BENCHMARKS.md.
BENCHTIME ?= 300ms
bench:
	cd pkg && $(GO) test -run='^$$' -bench='FramingDecode|Envelope|PassedEvent|EncodeLike|EncodeAudit|Decide|Redact$$|LookupBatch500' -benchmem -benchtime=$(BENCHTIME) ./avrocodec ./decision ./redact ./consent
	cd services/enforcer && $(GO) test -run='^$$' -bench=Process -benchmem -benchtime=$(BENCHTIME) ./internal/enforce
	$(GO) run ./e2e/bench
	$(MAKE) --no-print-directory bench-ledger

# The ledger (issue 12): audit records/s ingested into SQLite and a real
# PostgreSQL (started by the benchmark, pkg/pgtest), the ledger service's own
# rate (records read from the devbroker, decoded and stored, against the
# store alone on the same records), then with
# LEDGER_BENCH_RECORDS audit records loaded (10,000,000 by default: about
# 20 minutes of loading per database on 2 cores) the latency of the
# queries behind consentctl subject, breach over a day, completeness and
# policies. LEDGER_BENCH_RECORDS=1000000 makes a quick run.
LEDGER_BENCH_RECORDS ?= 10000000
bench-ledger:
	cd pkg && $(GO) test -run='^$$' -bench='Ingest' -benchtime=20x ./ledger
	cd services/ledger && $(GO) test -run='^$$' -bench='Consumer' -benchtime=3x .
	cd pkg && LEDGER_BENCH_RECORDS=$(LEDGER_BENCH_RECORDS) $(GO) test -run='^$$' -bench='Queries' -benchtime=1x -timeout=180m -v ./ledger

FUZZTIME ?= 30s
fuzz:
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./avrocodec
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzEnvelopeMatchesDecode -fuzztime=$(FUZZTIME) ./avrocodec
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzCanonicalForm -fuzztime=$(FUZZTIME) ./avrocodec
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./policy
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./signals/tcf
	cd pkg && $(GO) test -run='^$$' -fuzz='FuzzParse$$' -fuzztime=$(FUZZTIME) ./signals/gpp
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParseUSP -fuzztime=$(FUZZTIME) ./signals/gpp
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzChanges -fuzztime=$(FUZZTIME) ./signals
	cd services/consent-sync && $(GO) test -run='^$$' -fuzz=FuzzParseSignals -fuzztime=$(FUZZTIME) ./internal/intake
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzRedactNeverLeaks -fuzztime=$(FUZZTIME) ./redact
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzOpen -fuzztime=$(FUZZTIME) ./shred
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzAddKeyRecord -fuzztime=$(FUZZTIME) ./ledger
	cd services/consent-sync && $(GO) test -run='^$$' -fuzz='FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/intake
	cd services/enforcer && $(GO) test -run='^$$' -fuzz=FuzzReferenceModel -fuzztime=$(FUZZTIME) ./internal/enforce
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzResolve -fuzztime=$(FUZZTIME) ./ledger
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzStoreText -fuzztime=$(FUZZTIME) ./ledger
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzOpen -fuzztime=$(FUZZTIME) ./seal
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzVerifyProof -fuzztime=$(FUZZTIME) ./seal

# The fault suite (e2e/fault_*_test.go) at soak size: more events, kills and
# restarts than in make test. Override any FAULT_* knob from the environment.
# The full log (with every process's output) goes to $SOAK_LOG.
soak:
	cd e2e && log=$${SOAK_LOG:-/tmp/consentgate-soak.log}; FAULT_EVENTS=$${FAULT_EVENTS:-50000} FAULT_KILLS=$${FAULT_KILLS:-10} FAULT_RATE=$${FAULT_RATE:-1000} \
		FAULT_CHANGES=$${FAULT_CHANGES:-20000} FAULT_BROKER_RESTARTS=$${FAULT_BROKER_RESTARTS:-3} FAULT_SUBJECTS=$${FAULT_SUBJECTS:-200} \
		FAULT_HOT_EVENTS=$${FAULT_HOT_EVENTS:-60000} FAULT_HOT_RATE=$${FAULT_HOT_RATE:-1000} FAULT_HOT_SUBJECTS=$${FAULT_HOT_SUBJECTS:-10} \
		$(GO) test -race -count=1 -timeout 60m -run 'TestFault' -v . > $$log 2>&1; rc=$$?; \
		grep -E '^(=== RUN|--- |    fault_|FAIL|ok|PASS)' $$log; echo "full log: $$log"; [ $$rc = 0 ] || exit $$rc; \
		cd ../pkg && $(GO) test -race -count=20 -timeout 60m -run '$(CLUSTER_TESTS)' ./consent/ && \
		$(GO) test -race -count=20 -timeout 60m ./shred/

clean:
	rm -rf bin .data
