# consentgate: the two commands the README promises are `make run` and
# `make test`. Everything loops over the workspace's modules.

MODULES := schemas pkg services/devbroker services/consent-sync services/enforcer services/devstack e2e
SERVICES := devbroker consent-sync enforcer devstack
GO ?= go
TEST_TIMEOUT ?= 12m

.PHONY: all build run test vet fmt-check tidy bench fuzz soak clean help

all: build

help:
	@echo "make run     start the whole pipeline on embedded defaults (broker, Redis, services, demo producer)"
	@echo "make test    vet, format check and every module's tests with -race (needs redis-server on PATH)"
	@echo "make build   build the binaries into bin/"
	@echo "make fuzz    run each fuzz target for FUZZTIME (default 30s)"
	@echo "make clean   remove bin/ and the dev stack's data (.data/)"

build:
	@mkdir -p bin
	@for s in $(SERVICES); do echo "building bin/$$s"; $(GO) build -o bin/$$s ./services/$$s || exit 1; done

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

FUZZTIME ?= 30s
fuzz:
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./avrocodec
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./policy

clean:
	rm -rf bin .data
