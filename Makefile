# Two commands matter: `make demo` and `make test`. Each installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-full demo lint unit e2e nfs binaries image pin bench bench-quick soak clean help
BENCH_STAMP := $(VENV)/.bench-installed

help:
	@echo "make demo   - start a local control plane and the provisioner on .demo/export"
	@echo "make demo NFS=real - the same on a real NFS server and fuse-nfs mount (root)"
	@echo "make test   - lint, type-check and run every test (unit and end-to-end)"
	@echo "make image  - build the container image with podman, tagged as the chart's image.*"
	@echo "make bench  - burst benchmark against the Go provisioner and the floor (~25 min)"
	@echo "make bench-quick - N = 100, one round, ours and the floor only (~1 min)"
	@echo "make soak   - seeded chaos soak with invariants checked all the time (root; 3 min;"
	@echo "              SOAK_DURATION=30m SOAK_SEED=n for others); report in .soak-results/"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

binaries: $(STAMP)
	$(PY) hack/build_binaries.py

# The chart's image (values.yaml image.repository:tag), from the Dockerfile; the base is
# python:3.11-slim where it can be pulled, else a Debian-made one (cached).
image: $(STAMP)
	$(PY) hack/build_image.py

lint: $(STAMP)
	$(VENV)/bin/ruff check nfs_provisioner tests hack benchmarks
	$(VENV)/bin/ruff format --check nfs_provisioner tests hack benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest tests/unit

e2e: $(STAMP) binaries
	$(PY) -m pytest tests/e2e

# The provisioner on a real NFS server (NFS-Ganesha) through fuse-nfs; needs root (see README).
nfs: $(STAMP) binaries
	$(PY) -m pytest tests/nfs

# pytest exits 5 when no test ran, so an empty run fails here too.
test: $(STAMP) binaries lint
	$(PY) -m pytest tests

# As `make test`, with 10 000 generated cases per path-safety property instead of 300.
test-full: $(STAMP) binaries lint
	NFS_PROVISIONER_HYPOTHESIS_EXAMPLES=10000 $(PY) -m pytest tests

# NFS=real: the export is a real NFS server (NFS-Ganesha) mounted with fuse-nfs; needs root.
NFS ?= local
demo: $(STAMP) binaries
	$(PY) hack/demo.py --nfs $(NFS)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Results land in .bench-results/<date>-<host>.json and .png (untracked); see benchmarks/README.md.
# The Go original is built from GO_PROVISIONER_SRC (default ../shared/go-original);
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS=--no-go.
BENCH_ARGS ?=
bench: $(BENCH_STAMP) binaries
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP) binaries
	$(PY) -m benchmarks --quick

# Two replicas, random claims and faults from the seed, invariants checked every second; the
# report (JSON and plot) lands in .soak-results/. Needs root (NFS-Ganesha, fuse-nfs, tmpfs).
SOAK_DURATION ?= 3m
SOAK_SEED ?= 147
soak: $(BENCH_STAMP) binaries
	$(PY) hack/soak --duration $(SOAK_DURATION) --seed $(SOAK_SEED)

pin: $(STAMP)
	$(PY) hack/pin_versions.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
