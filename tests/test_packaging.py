"""environment.yml (conda) names the same packages and bounds as pyproject.toml."""

from __future__ import annotations

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
