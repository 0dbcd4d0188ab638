"""qlib: the one shared library of the quantization course.

Every definition the notebooks use lives here once.  The subject, one module
per idea, by chapter:

* 01 :mod:`qlib.signals` -- sampling and aliasing, uniform quantizers, SQNR
  (against bits, input level and clip: ``sqnr_vs_level``, ``sqnr_vs_clip``),
  spectra, dither, noise shaping, companding, speech-like and other test
  signals, images and error diffusion, audio; :mod:`qlib.kmeans` -- k-means,
  and K-means weight sharing (06)
* 02 :mod:`qlib.integers` -- integer encodings, overflow, sub-byte packing
* 03 :mod:`qlib.fixedpoint` -- Qm.n formats, rounding, overflow, integer
  arithmetic and the M0 * 2**-shift multiplier
* 04, 05 :mod:`qlib.floats` -- IEEE 754 and any ExMy format, bit-exact
* 05 :mod:`qlib.mx` -- OCP MX block formats and NVFP4
* 06-09 :mod:`qlib.data` -- MNIST; :mod:`qlib.nn` -- a NumPy network library
  and the course's trained LeNet-300-100; :mod:`qlib.optim` -- its optimizers
  and training loops
* 06 :mod:`qlib.kmeansnet` -- K-means weight sharing of a whole network
* 07 :mod:`qlib.linear` -- r = S(q - Z) as ONNX; :mod:`qlib.intinfer` --
  integer-only inference (requantization, quantized linear and conv layers);
  :mod:`qlib.quantnet` -- a whole network in integers
* 08 :mod:`qlib.ptq` -- post-training quantization of a whole network
  (granularity, sizes, fake-quantized activations); :mod:`qlib.calibrate` --
  activation calibrators (min-max, EMA, percentile, MSE, KL);
  :mod:`qlib.adaround` -- learned rounding
* 09 :mod:`qlib.qat` -- quantizers to train through (straight-through
  estimator, LSQ, binary and ternary); :mod:`qlib.qatnet` --
  quantization-aware training of a whole network; :mod:`qlib.binary` --
  BWN, TWN and XNOR-popcount; :mod:`qlib.mixed` -- per-layer bit widths
  under a size budget; :mod:`qlib.compare` -- every method of 06-09 on
  LeNet-300-100 in one table
* 10 :mod:`qlib.llm` -- a real language model, SmolLM2-135M, in NumPy: read
  from its GGUF file (Q4_1/Q8_0 blocks decoded, the tokenizer rebuilt), its
  forward pass with a KV cache, perplexity, greedy generation, and the
  hooks that plug quantizers into its linear layers; :mod:`qlib.llmquant`
  -- the chapter's methods on it (groups, W8A8, LLM.int8, SmoothQuant, AWQ,
  GPTQ, a quantized KV cache, FP8/MXFP4/NVFP4 weights; the calibrated ones
  in ``qlib._llm_calibrated`` and ``qlib._llm_gptq``, the cache in
  ``qlib._llm_kvcache``)
* all :mod:`qlib.feedback` -- :func:`check`, :class:`Question`, :class:`Case`
  for exercises; :mod:`qlib.plot` -- the course's figure style

Private siblings keep a chapter module to one sitting; learners import the
chapter module, which imports or re-exports them: ``qlib._signal_sources``
(the test signals of 01, aliasing and the power spectrum),
``qlib._signal_images`` (the images of 01) and ``qlib._signal_checks`` (the
argument checks the three share),
``qlib._integer_codes`` (02: argument checks, n-bit wrap and sign extension,
the sign-magnitude and ones' complement encoders), ``qlib._fixed_rounding``
(03: exact rounding and overflow), ``qlib._float_codec`` (04, 05: how
``FloatFormat.encode`` rounds), ``qlib._llm_gguf`` (10: the model's file,
its blocks and its tokenizer) and ``qlib._gguf_file`` (10: reading a GGUF
file), ``qlib._llm_calibrated``, ``qlib._llm_gptq``
and ``qlib._llm_kvcache`` (10: the calibrated methods, GPTQ, the quantized
KV cache).

Around the subject:

* :mod:`qlib.widgets` -- the interactive explorers, one module per chapter
  (``qlib.widgets.signals``, ``.integers``, ``.fixedpoint``, ``.floats``,
  ``.kmeans``, ``.linear``, ``.ptq``, ``.qat``) on one base
* :mod:`qlib.course` -- the course machinery: notebook storage, exercise
  generation, the grader and its Gradescope autograder

``from qlib import check, Question, Case`` is all an exercise notebook needs
besides its chapter's module.
"""

from . import feedback, integers
from .feedback import Case, Question, check

__all__ = ["Case", "Question", "check", "feedback", "integers"]
__version__ = "0.1.0"
