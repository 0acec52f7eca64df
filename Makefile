# Every target installs what it needs: a fresh clone runs `make test` directly.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LINT := $(wildcard sscbench plugins tests benchmarks tools)
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint fuzz bench bench-tiny bench-workers bench-sequential reproduce study clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ucr,dashboard]'
	touch $(STAMP)

# The suite runs with headless Chromium (installed with apt-get where missing, for the report's browser
# test) beside a throwaway PostgreSQL cluster (Unix socket only), stopped afterwards, in one
# worker process per core (pytest-xdist; at most 4; idle workers take queued tests from busy ones),
# each training with one thread.
test: $(STAMP)
	$(PY) -m ruff check $(LINT)
	bash tools/ensure-chromium.sh
	bash tools/with-postgres.sh $(PY) -m pytest --numprocesses=auto --maxprocesses=4 --dist worksteal

# Thousands of generated specs, damaged results files, storage URLs and sequences of differences (the suite runs 60 of each).
fuzz: $(STAMP)
	SSCBENCH_FUZZ_EXAMPLES=3000 $(PY) -m pytest -p no:cacheprovider tests/test_fuzz.py

lint: $(STAMP)
	$(PY) -m ruff check $(LINT)

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-workers: $(STAMP)
	bash tools/with-postgres.sh $(PY) benchmarks/workers.py

# The sequential rule's error rates and replicates used, simulated (no training).
bench-sequential: $(STAMP)
	$(PY) benchmarks/sequential.py

bench-tiny: $(STAMP)
	$(PY) benchmarks/run.py --tiny --out results/bench-tiny.json

reproduce: $(STAMP)
	$(VENV)/bin/sscbench reproduce

# The published study (docs/study/): every built-in regularizer against baseline on the mnist1d workloads,
# at the budget docs/study.md states; it resumes from results/study/. Then its page and the README's matrix.
STUDY_ARGS ?= --workloads mnist1d-mlp,mnist1d-cnn,mnist1d-shuffled,mnist1d-noisy --pruner hyperband \
	--min-replicates 5 --max-replicates 10
study: $(STAMP)
	$(VENV)/bin/sscbench study $(STUDY_ARGS) --out results/study
	mkdir -p docs/study
	cp results/study/study.json docs/study/study.json
	$(VENV)/bin/sscbench report --html --out docs/study
	$(PY) tools/readme_matrix.py docs/study/study.json README.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
