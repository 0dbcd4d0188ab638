"""What every pytest run in this repository starts with, whatever paths it
is given (``make test``, or ``pytest notebooks/06_kmeans_quantization.ipynb``
alone): pytest loads this file before it imports anything under test.

* The CPU code the stored outputs were computed with (tools/pin_cpu.py:
  OpenBLAS's Haswell kernels, NumPy's AVX2 loops), set in ``os.environ``
  before anything imports numpy, for this process, pytest-xdist's workers
  and every kernel nbval or the browser suite starts.  On a machine that
  runs that code (x86-64 Linux with AVX2), the run stops at once, saying
  why, when this process computes with other code; the header names the
  code it runs, everywhere.
* Where MNIST is found: ``QLIB_DATA``, else ``../shared/data`` beside the
  clone (where CI lays it), also in ``os.environ`` for the kernels; never a
  download location.

Everything else the tests share is in tests/conftest.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
import pin_cpu  # noqa: E402  (tools/; before numpy loads)

pin_cpu.pin()

import pytest  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
if not os.environ.get("QLIB_DATA") and SHARED_DATA.is_dir():
    os.environ["QLIB_DATA"] = str(SHARED_DATA)


def pytest_configure(config):
    if why := pin_cpu.problem():
        raise pytest.UsageError(why)


def pytest_report_header(config):
    return pin_cpu.describe()
