# Stuffmart: the two commands are `make dev` (the whole stack locally) and
# `make test` (every test of every module). The workspace root is not a
# module, so targets iterate the modules go.work lists.

MODULES := $(shell go list -m -f '{{.Dir}}')
ifeq ($(strip $(MODULES)),)
$(error no Go modules found: `go list -m` failed in the workspace (see its error above))
endif
GOTEST_FLAGS ?= -race -count=1

.PHONY: dev test vet fmt-check tidy bench

## dev: run the storefront and every service locally on embedded FerretDB + NATS Streaming
dev:
	go build -o bin/stuffmart-dev ./dev
	./bin/stuffmart-dev

## test: format check, vet and every test of every module
test: fmt-check vet
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && go test $(GOTEST_FLAGS) ./...); \
	done

vet:
	@set -e; for m in $(MODULES); do (cd $$m && go vet ./...); done

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && go mod tidy); done

## bench: the benchmarks whose figures are in the README
bench:
	@set -e; for m in $(MODULES); do (cd $$m && go test -run '^$$' -bench . -benchmem ./...); done
