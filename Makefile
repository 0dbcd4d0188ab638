# The two commands of the README:  `make lab`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test lint format notebooks exercises bench clean

$(STAMP): pyproject.toml tools/make_venv.py
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## make lab: create .venv, install, open JupyterLab on the first notebook
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

## make test: lint, qlib tests, notebooks (strict nbval), solutions, exercises
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make notebooks: re-execute notebooks/ and solutions/, store outputs
notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py notebooks solutions

## make exercises: regenerate exercises/ from solutions/
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_integers.py
	$(BIN)/python benchmarks/bench_floats.py
	$(BIN)/python benchmarks/bench_widgets.py
	$(BIN)/python benchmarks/bench_grade.py

clean:
	rm -rf $(VENV)
