# Two entry points: `make run` (set up, run the pipeline on the defaults) and `make test`.
# Setup is cache-friendly: it reinstalls only when pyproject.toml, the lock or native/ changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-done
# Every dependency is pinned in $(LOCK) (complete, all platforms): the same versions, the same bytes everywhere.
LOCK := requirements/lock.txt
LOCK_EXTRAS := --extra test --extra dev --extra dask --extra s3
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
NATIVE := $(wildcard native/*.cpp native/*.hpp native/*.h native/CMakeLists.txt native/third_party/*)

.PHONY: setup lock lint test run compare bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK) $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "pip==$(PIP_VERSION)"
	# every dependency at its locked version, built the normal way (isolated builds for any sdist)
	$(PIP) install --quiet -r $(LOCK)
	# tinysoundfont renders SoundFonts; its PyAudio dependency is for live playback only and does not build here
	$(PIP) install --quiet --no-deps "tinysoundfont==0.3.7"
	# the project alone without isolation: its build requirements are in the lock, native rebuilds are incremental
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Regenerate the lock on purpose (new dependency, upgrade): uv keeps every pin it can, so the diff is small.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip compile pyproject.toml requirements/build.in $(LOCK_EXTRAS) --universal \
	    --python-version 3.11 -o $(LOCK)

# the gate before the tests: lint, format, types of the public functions, the architecture's import contracts
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest -q

run: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	@echo
	@$(PY) -m trainer.evaluation.report metrics
	@echo
	@echo "models:    models/model.keras (streaming, 23 ms latency), models/offline.keras (for files: sees 1.4 s either side)"
	@echo "metrics:   metrics/fit.json metrics/eval.json, the offline model's metrics/eval_offline.json (all of it: .venv/bin/dvc metrics show; curves: .venv/bin/dvc plots show)"
	@echo "pictures:  metrics/eval_roll.png, metrics/eval_offline_roll.png (reference above, transcription below)"
	@echo "try:       .venv/bin/trainer infer $$(ls data/eval/*.wav | head -n 1) --model models/offline.keras --out-dir out/"

# the peer for benchmarks/compare_basic_pitch.py; basic-pitch pins old TF/CoreML, so it goes in without deps
compare: setup
	$(PIP) install --quiet --no-build-isolation -e ".[compare]"
	$(PIP) install --quiet --no-deps "basic-pitch==0.4.0"

bench: setup
	$(PY) benchmarks/synth_throughput.py
	$(PY) benchmarks/input_pipeline.py

clean:
	rm -rf build $(VENV)
