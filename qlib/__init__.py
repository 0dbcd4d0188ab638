"""qlib: the one shared module of the quantization course.

Every definition the notebooks use lives here once, one module per chapter:

* :mod:`qlib.integers` -- integer encodings, overflow, sub-byte packing (02)
* :mod:`qlib.feedback` -- :func:`check`, :class:`Question`, :class:`Case` for exercises
* :mod:`qlib.plot` -- the course's figure style
* :mod:`qlib.widgets` -- the interactive explorers

``from qlib import check, Question, Case`` is all an exercise notebook needs
besides its chapter's module.
"""

from . import feedback, integers
from .feedback import Case, Question, check

__all__ = ["Case", "Question", "check", "feedback", "integers"]
__version__ = "0.1.0"
