"""Create the course's virtual environment, even where ``ensurepip`` is missing.

Debian's own ``python3`` ships without ``ensurepip`` unless the ``python3-venv``
package is installed, so ``python3 -m venv`` fails there.  In that case this
script creates the environment without pip and installs pip from its wheel on
PyPI, after checking the wheel's SHA-256 against the one PyPI publishes.

Usage: ``python3 tools/make_venv.py .venv``
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

PYPI_PIP = "https://pypi.org/pypi/pip/json"


def _has_ensurepip() -> bool:
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        return False
    return True


def _bootstrap_pip(python: Path) -> None:
    with urllib.request.urlopen(PYPI_PIP, timeout=60) as response:
        release = json.load(response)
    wheel = next(
        f
        for f in release["urls"]
        if f["packagetype"] == "bdist_wheel" and f["filename"].endswith("none-any.whl")
    )
    url = urllib.parse.urljoin(PYPI_PIP, wheel["url"])  # mirrors answer relative
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
        raise SystemExit(f"make_venv: checksum mismatch for {wheel['filename']}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / wheel["filename"]
        path.write_bytes(data)
        # A pip wheel can run itself: python pip.whl/pip install pip.whl
        subprocess.run(
            [str(python), f"{path}/pip", "install", "--quiet", str(path)], check=True
        )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    target = Path(argv[0])
    python = target / "bin" / "python"
    if python.exists():
        return 0
    with_pip = _has_ensurepip()
    venv.EnvBuilder(with_pip=with_pip).create(target)
    if not with_pip:
        print("make_venv: ensurepip is missing; installing pip from PyPI")
        try:
            _bootstrap_pip(python)
        except (OSError, ValueError, KeyError, StopIteration, SystemExit) as err:
            shutil.rmtree(target, ignore_errors=True)  # no half-made environment
            print(
                f"make_venv: could not install pip ({err}).\n"
                "Install Debian's venv support and try again: "
                "sudo apt-get install python3-venv",
                file=sys.stderr,
            )
            return 1
        except subprocess.CalledProcessError as err:
            shutil.rmtree(target, ignore_errors=True)
            print(f"make_venv: installing pip failed: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
