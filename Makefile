# scanwarden entry points. Every target that needs system packages runs
# scripts/deps.sh first, so a fresh Debian machine needs nothing by hand.

GO      ?= go
BIN     := bin/scanwarden
PKGS    := ./...

.PHONY: all build deps test unit lint bench pcaps demo e2e clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/scanwarden

# The README's test command: formatting, vet, staticcheck, then every test
# (root-only kernel tests run when make test runs as root, and skip with a
# reason otherwise).
test: deps
	bash scripts/test.sh

bench: build
	bash scripts/bench.sh

pcaps: build
	bash scripts/record-pcaps.sh

demo:
	@echo "make demo: not yet: the live daemon (issue 4) is needed for it"

e2e:
	@echo "make e2e: not yet: the live daemon (issue 4) is needed for it"

clean:
	rm -rf bin
