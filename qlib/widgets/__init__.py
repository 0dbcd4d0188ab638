"""Interactive explorers: thin ipywidgets wiring over qlib's pure functions.

One module per chapter, named after the chapter's qlib module, on one piece
of shared machinery:

* :mod:`qlib.widgets._explorer` -- :class:`Explorer`, the pattern every
  explorer follows (introduced in ``notebooks/00_start_here.ipynb``)
* :mod:`qlib.widgets.signals` -- :class:`SamplingExplorer` (in
  ``_sampling.py``), :class:`ImageBitDepth`, :class:`CompandingExplorer` (01)
* :mod:`qlib.widgets.integers` -- :class:`LevelsDemo` (00, the widget check);
  :class:`BitFlipper`, :class:`NumberWheel` (02)
* :mod:`qlib.widgets.fixedpoint` -- :class:`QFormatExplorer` (03)
* :mod:`qlib.widgets.floats` -- :class:`FloatExplorer` (04; its views in
  ``_float_views.py`` and ``_float_lines.py``), :class:`FormatHistogram`
  (05; in ``_format_histogram.py``, its figure in ``_format_panel.py``)
* :mod:`qlib.widgets.kmeans` -- :class:`KMeansExplorer` (06)
* :mod:`qlib.widgets.linear` -- :class:`LinearQuantExplorer` (07)
* :mod:`qlib.widgets.ptq` -- :class:`ClippingExplorer` (08)
* :mod:`qlib.widgets.qat` -- :class:`BitAllocationExplorer` (09)
* :mod:`qlib.widgets.llm` -- :class:`FormatExplorer` (from the measured
  table), :class:`SmoothingExplorer` (10; in ``_smoothing.py``)

Private siblings (``_*.py``) keep each chapter's module to one sitting; the
chapter module re-exports what they define.  Notebooks write
``from qlib import widgets`` and ``widgets.SamplingExplorer()``.
"""

from ._explorer import Explorer
from .fixedpoint import QFormatExplorer
from .floats import FloatExplorer, FormatHistogram
from .integers import BitFlipper, LevelsDemo, NumberWheel
from .kmeans import KMeansExplorer
from .linear import LinearQuantExplorer
from .llm import FormatExplorer, SmoothingExplorer
from .ptq import ClippingExplorer
from .qat import BitAllocationExplorer
from .signals import CompandingExplorer, ImageBitDepth, SamplingExplorer

__all__ = [
    "BitAllocationExplorer",
    "BitFlipper",
    "ClippingExplorer",
    "CompandingExplorer",
    "Explorer",
    "FloatExplorer",
    "FormatExplorer",
    "FormatHistogram",
    "ImageBitDepth",
    "KMeansExplorer",
    "LevelsDemo",
    "LinearQuantExplorer",
    "NumberWheel",
    "QFormatExplorer",
    "SamplingExplorer",
    "SmoothingExplorer",
]
