"""``python -m qlib.course``: the ``grade`` command."""

import sys

from .cli import main

sys.exit(main())
