# Quick start: `make repro` (whole pipeline on the built-in simulated data) and `make test`.
# Both create .venv on first use with the pinned versions in requirements.lock.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)

.PHONY: venv repro test test-slow lint perf notebooks notebooks-strip report lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

venv: $(STAMP)

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	pytest

test-slow: $(STAMP)
	pytest -m slow

lint: $(STAMP)
	ruff check .
	ruff format --check .
	mypy

perf: $(STAMP)
	python -m perf.run

# Execute every notebook in place on the run `make repro` made (outputs stay in the files for
# reading; `make notebooks-strip` clears them again before a commit).
notebooks: $(STAMP)
	cd notebooks && jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 *.ipynb

# Outputs, execution counts and run timings go; cell tags (the parameters cell) and the kernel stay.
notebooks-strip: $(STAMP)
	jupyter nbconvert --clear-output --inplace notebooks/*.ipynb \
		--ClearMetadataPreprocessor.enabled=True \
		--ClearMetadataPreprocessor.preserve_cell_metadata_mask="['tags']" \
		--ClearMetadataPreprocessor.preserve_nb_metadata_mask="['kernelspec', ('language_info', 'name')]"

report: $(STAMP)
	zombiescan report

# Re-pin every installed package after changing pyproject.toml. setuptools and wheel stay out:
# pip applies constraints to build environments too, where pyproject asks for a newer setuptools.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable --all | grep -vE "^(zombiescan|setuptools|wheel)=" > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
