"""Adversarial submissions of exercise 02 for the batch grader, and their outcomes.

Every submission is generated here from ``solutions/02_integer_encodings.ipynb``
and ``exercises/02_integer_encodings.ipynb`` (nothing hand-written is stored):
the exercise notebook with answer cells filled in from the solution, or with
typical wrong answers, plus cells that attack the grader.

:func:`write_corpus` writes them to a folder and returns, per submission name,
the exact :class:`Expected` outcome: status, score and per-question scores as
fractions, computed from how many of each question's cases must pass.

Limits: the outcomes hold for ``Limits(cell_timeout=3, call_timeout=3,
total_timeout=60, memory_mb=MEMORY_MB)`` (as in ``tests/test_grader.py``); with
the default limits too, except that memory_across_processes then probes
below the limit and cannot see the hole it looks for.  Entries marked
``sandbox=True`` are only safe, and their outcome only holds, with the root
sandbox (PID/mount/network namespaces, a read-only file system, a pids cgroup).
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "02"
SOLUTION = REPO / "solutions" / "02_integer_encodings.ipynb"
EXERCISE = REPO / "exercises" / "02_integer_encodings.ipynb"

# question id -> (function, points, visible cases, hidden cases), as the solution
# declares them (tests/test_grader.py checks this against qlib.course's reference)
QUESTIONS: dict[str, tuple[str, int, int, int]] = {
    "02.1": ("overflows", 2, 7, 20),
    "02.2": ("accumulator_bits", 2, 10, 93),
    "02.3": ("decode_twos_complement", 3, 5, 11),
    "02.4": ("encode_sign_magnitude", 3, 5, 10),
    "02.5": ("wrap_int8", 2, 4, 5),
    "02.6": ("saturate_int8", 1, 3, 4),
    "02.7": ("sign_extend", 3, 5, 12),
    "02.8": ("pack_int4", 2, 5, 5),
    "02.9": ("unpack_int4", 2, 5, 4),
}
FUNCTIONS = {qid: spec[0] for qid, spec in QUESTIONS.items()}
QID = {spec[0]: qid for qid, spec in QUESTIONS.items()}
MAX_SCORE = Fraction(sum(spec[1] for spec in QUESTIONS.values()))

# strings in the command lines of the processes hostile submissions leave
# behind; after the batch no process may carry one
SLEEP_POPEN = "600.0417"
SLEEP_DAEMON = "601.0417"
FILE_MARKER = "qlib-corpus-big"
SHM_KEY = 0x51C0DE  # the key of the SysV shared memory segment sysv_shm_leak makes
# the memory limit the corpus is graded with (tests/test_grader.py); a kernel
# needs under 300 MB of address space
MEMORY_MB = 1024


def _cases(qid: str) -> int:
    return QUESTIONS[qid][2] + QUESTIONS[qid][3]


ALL = {qid: _cases(qid) for qid in QUESTIONS}
NONE = dict.fromkeys(QUESTIONS, 0)

# Cases the typical wrong answers (WRONG below) still pass, per question, worked
# out by hand from the solution's case lists:
# 02.1 (a - b computed as a + (-b)): every "+" case, and the "-" cases whose b
#      never holds the dtype's most negative value (whose negation wraps to
#      itself) -- visible: the four "+" and the empty "-" (5 of 7); hidden: the
#      ten "+", and "-" on the random int16/int32/int64 draws, the 3-D int32
#      draw and the empty input (15 of 20).
# 02.2 (np.log2: a float): none, a float where an integer belongs never passes.
# 02.3 (reads codes as unsigned): the two empty inputs, (0,) int64 and (0, 4).
# 02.4 (sign bit one place too high): inputs without negatives -- visible [0]
#      in 1 bit, hidden zeros(3) in 1 bit, and the hidden empty input.
# 02.5 (int8 result): none, check_dtype wants int64 even for an empty array.
# 02.6 (clamps to -127): the hidden empty input, and the hidden 5x7 draw from
#      -300..299 cannot pass: it holds values below -127.
# 02.7 (no extension): the visible 4 -> 4 case and the hidden cases whose width
#      does not grow (8 -> 8, 1 -> 1, 64 -> 64) or whose input is empty.
# 02.8 (high nibble first): the two empty inputs.
# 02.9 (no sign extension): visible 0x21 -> [1, 2] and the empty inputs.
WRONG_PASSED = {
    "02.1": 5 + 15,
    "02.2": 0,
    "02.3": 2,
    "02.4": 3,
    "02.5": 0,
    "02.6": 1,
    "02.7": 5,
    "02.8": 2,
    "02.9": 3,
}
# The visible-case lookup table passes every visible case, and the hidden cases
# that repeat a visible one exactly (same arguments, same dtypes): only the
# empty uint8 input in 02.9.  (02.1's hidden empty input is (0, 3) int64,
# 02.3's (0, 4) uint16, 02.8's int8, and 02.2's random widths and term counts
# never draw a visible case: none repeats a visible one.)
LOOKUP_PASSED = {
    "02.1": 7,
    "02.2": 10,
    "02.3": 5,
    "02.4": 5,
    "02.5": 4,
    "02.6": 3,
    "02.7": 5,
    "02.8": 5,
    "02.9": 5 + 1,
}


@dataclass(frozen=True)
class Expected:
    """The exact outcome a submission must get."""

    status: str
    passed: dict[str, int]  # cases passed per question id
    why: str  # the attack, and why this is the right outcome
    sandbox: bool = False  # safe, and right, only with the root sandbox
    # statuses that are just as right (e.g. an OOM kill inside a memory limit
    # may end a probe cell); the score stays exact
    other_statuses: tuple[str, ...] = ()
    questions: dict[str, Fraction] = field(init=False)
    score: Fraction = field(init=False)

    def __post_init__(self) -> None:
        assert set(self.passed) == set(QUESTIONS), self.passed
        questions = {
            qid: Fraction(QUESTIONS[qid][1]) * self.passed[qid] / _cases(qid)
            for qid in QUESTIONS
        }
        object.__setattr__(self, "questions", questions)
        object.__setattr__(self, "score", sum(questions.values(), Fraction(0)))


def _with(base: dict[str, int], **by_function: int) -> dict[str, int]:
    passed = dict(base)
    for function, count in by_function.items():
        passed[QID[function]] = count
    return passed


# ------------------------------------------------------------------ notebooks


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _solution_answers() -> dict[str, str]:
    """function name -> the solution's answer cell, markers removed."""
    answers = {}
    for cell in _load(SOLUTION)["cells"]:
        text = _source(cell)
        found = re.match(r"def (\w+)\(", text)
        if cell["cell_type"] == "code" and found and found.group(1) in QID:
            lines = [
                line
                for line in text.splitlines()
                if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
            ]
            answers[found.group(1)] = "\n".join(lines) + "\n"
    assert set(answers) == set(QID), sorted(answers)
    return answers


SOLUTION_ANSWERS = _solution_answers()

# typical mistakes, one per function
WRONG = {
    "overflows": '''\
def overflows(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    """Where the exact ``a + b`` or ``a - b`` leaves the dtype's range (bool)."""
    if op == "-":
        b = -b  # subtraction as addition of the negation: -(-128) is -128
    s = a + b
    return ((a ^ s) & (b ^ s)) < 0
''',
    "accumulator_bits": '''\
def accumulator_bits(
    terms: int, a_bits: int, a_signed: bool, b_bits: int, b_signed: bool
) -> int:
    """Fewest bits of a two's-complement accumulator for ``terms`` products."""
    return a_bits + b_bits + np.ceil(np.log2(terms))  # a float, and no signs
''',
    "decode_twos_complement": '''\
def decode_twos_complement(codes: np.ndarray, bits: int) -> np.ndarray:
    """The int64 values of ``bits``-bit two's-complement codes."""
    return np.asarray(codes).astype(np.int64)  # read as unsigned
''',
    "encode_sign_magnitude": '''\
def encode_sign_magnitude(values: np.ndarray, bits: int) -> np.ndarray:
    """The uint64 sign-magnitude codes of ``values`` in ``bits`` bits."""
    v = np.asarray(values).astype(np.int64)
    sign = (v < 0).astype(np.uint64) << np.uint64(bits)  # one place too high
    return sign | np.abs(v).astype(np.uint64)
''',
    "wrap_int8": '''\
def wrap_int8(values: np.ndarray) -> np.ndarray:
    """What an int8 register keeps of ``values``, as int64."""
    return np.asarray(values).astype(np.int8)  # right values, int8 not int64
''',
    "saturate_int8": '''\
def saturate_int8(values: np.ndarray) -> np.ndarray:
    """``values`` clamped to the int8 range, as int64."""
    return np.clip(np.asarray(values).astype(np.int64), -127, 127)  # not -128
''',
    "sign_extend": '''\
def sign_extend(codes: np.ndarray, bits: int, new_bits: int) -> np.ndarray:
    """Widen ``bits``-bit two's-complement codes to ``new_bits`` bits (uint64)."""
    return np.asarray(codes).astype(np.uint64)  # zero-extends: no sign copied
''',
    "pack_int4": '''\
def pack_int4(values: np.ndarray) -> np.ndarray:
    """Pack int4 ``values`` two to a byte, first in the low nibble (uint8)."""
    nibbles = (np.asarray(values).astype(np.int64) & 0xF).astype(np.uint8)
    return (nibbles[0::2] << 4) | nibbles[1::2]  # first value in the high nibble
''',
    "unpack_int4": '''\
def unpack_int4(data: np.ndarray) -> np.ndarray:
    """Unpack bytes into int4 values (int8), low nibble first."""
    d = np.asarray(data).astype(np.uint8)
    return np.stack([d & 0xF, d >> 4], axis=-1).reshape(-1).astype(np.int8)
''',
}

_LOOKUP_HELPER = '''\
def _same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _lookup(question, *args):
    """The answer of the visible example with exactly these arguments."""
    for case in question.cases:
        if _same(tuple(case.args), args):
            return case.expected
    raise NotImplementedError("only the examples are answered")
'''

_SIGNATURES = {
    "overflows": "a, b, op",
    "accumulator_bits": "terms, a_bits, a_signed, b_bits, b_signed",
    "decode_twos_complement": "codes, bits",
    "encode_sign_magnitude": "values, bits",
    "wrap_int8": "values",
    "saturate_int8": "values",
    "sign_extend": "codes, bits, new_bits",
    "pack_int4": "values",
    "unpack_int4": "data",
}

LOOKUP = {
    function: f"def {function}({params}):\n"
    f"    return _lookup(Q{QID[function][-1]}, {params})\n"
    for function, params in _SIGNATURES.items()
}


def code_cell(source: str, cell_id: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": cell_id,
        "metadata": {},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def _answer_cell_id(nb: dict, function: str) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and _source(cell).startswith(f"def {function}("):
            return cell["id"]
    raise KeyError(function)


def answered(answers: dict[str, str] | None = None, **by_function: str) -> dict:
    """The exercise notebook with its answer cells filled in: the solution's
    answers, replaced by ``answers`` and then by ``by_function``."""
    chosen = {**SOLUTION_ANSWERS, **(answers or {}), **by_function}
    nb = _load(EXERCISE)
    for function, source in chosen.items():
        cell = _cell(nb, _answer_cell_id(nb, function))
        cell["source"] = source.splitlines(keepends=True)
    return nb


def _cell(nb: dict, cell_id: str) -> dict:
    return next(c for c in nb["cells"] if c.get("id") == cell_id)


def insert(nb: dict, source: str, *, after: str, cell_id: str) -> dict:
    """Insert a code cell after the cell with id ``after``."""
    index = next(i for i, c in enumerate(nb["cells"]) if c.get("id") == after)
    nb["cells"].insert(index + 1, code_cell(source, cell_id))
    return nb


def _subset(
    answers: dict[str, str], functions: list[str] | tuple[str, ...]
) -> dict[str, str]:
    return {f: answers[f] for f in functions}


# -------------------------------------------------------------------- entries

Builder = Callable[[], Any]  # a notebook dict, or raw bytes for a broken file
_ENTRIES: dict[str, tuple[Builder, Expected]] = {}


def entry(
    status: str,
    passed: dict[str, int],
    *,
    sandbox: bool = False,
    other_statuses: tuple[str, ...] = (),
):
    """Register a builder; its docstring is the one-line reason for the outcome."""

    def register(build: Builder) -> Builder:
        why = " ".join((build.__doc__ or "").split())
        assert why, f"{build.__name__} needs a one-line docstring"
        expected = Expected(status, passed, why, sandbox, other_statuses)
        _ENTRIES[build.__name__] = (build, expected)
        return build

    return register


WRONG_ALL = _with(NONE, **{QUESTIONS[q][0]: n for q, n in WRONG_PASSED.items()})
LOOKUP_ALL = _with(NONE, **{QUESTIONS[q][0]: n for q, n in LOOKUP_PASSED.items()})


# --- plain outcomes


@entry("ok", ALL)
def correct() -> dict:
    """The solution's answers in the exercise notebook: every case passes, 20."""
    return answered()


@entry("ok", WRONG_ALL)
def wrong() -> dict:
    """A typical mistake in every answer; only the cases the mistake does not
    touch (mostly empty inputs) pass -- see WRONG_PASSED."""
    return answered(WRONG)


@entry("ok", NONE)
def stub() -> dict:
    """The exercise notebook as handed out: every function raises
    NotImplementedError, so nothing is answered: 0, and a normal run."""
    return _load(EXERCISE)


@entry("ok", LOOKUP_ALL)
def visible_lookup() -> dict:
    """Answers looked up among the visible examples (Q1.cases...): the visible
    cases and the hidden ones that repeat them pass, the other hidden ones fail."""
    nb = answered(LOOKUP)
    return insert(nb, _LOOKUP_HELPER, after="setup", cell_id="lookup")


@entry(
    "ok",
    _with(ALL, sign_extend=WRONG_PASSED["02.7"], pack_int4=0, unpack_int4=0),
)
def partial() -> dict:
    """Questions 1-6 right, 7 with the typical mistake, 8 and 9 not attempted:
    13 points plus 7's few passing cases."""
    return answered(
        {**WRONG, **SOLUTION_ANSWERS, "sign_extend": WRONG["sign_extend"]},
        pack_int4=_stub("pack_int4"),
        unpack_int4=_stub("unpack_int4"),
    )


def _stub(function: str) -> str:
    nb = _load(EXERCISE)
    return _source(_cell(nb, _answer_cell_id(nb, function)))


# --- time


@entry("timeout", ALL)
def loop_top_level() -> dict:
    """A `while True: pass` cell between questions 4 and 5: the cell times out,
    is skipped, the notebook is run again without it; all answers are right."""
    nb = answered()
    return insert(nb, "while True:\n    pass\n", after="q4-check", cell_id="spin")


@entry("timeout", _with(ALL, overflows=ALL["02.1"] - 1))
def loop_hidden_input() -> dict:
    """overflows hangs on a 3-D subtraction, which only a hidden case makes:
    that call times out and fails alone, every other case passes."""
    source = SOLUTION_ANSWERS["overflows"].replace(
        '    if op == "+":',
        '    while a.ndim == 3 and op == "-":  # a debugging loop no example reaches\n'
        "        pass\n"
        '    if op == "+":',
        1,
    )
    assert "a.ndim == 3" in source
    return answered(overflows=source)


@entry("timeout", ALL)
def loop_ignores_sigint() -> dict:
    """A loop that ignores SIGINT and SIGTERM: only a kill stops it; the cell is
    skipped like any hung cell and the answers are right."""
    source = (
        "import signal\n\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True:\n"
        "    pass\n"
    )
    return insert(answered(), source, after="q2-check", cell_id="deaf")


@entry("timeout", ALL)
def long_sleep() -> dict:
    """time.sleep(10_000) in a cell: it times out and is skipped; right answers."""
    source = "import time\n\ntime.sleep(10_000)\n"
    return insert(answered(), source, after="q6-check", cell_id="nap")


@entry("ok", ALL)
def input_call() -> dict:
    """input() with no terminal: the kernel's stdin is /dev/null, so input()
    raises EOFError at once, a cell error like any other; right answers."""
    source = 'name = input("What is your name? ")\nprint("Hello", name)\n'
    return insert(answered(), source, after="setup", cell_id="ask")


# --- the kernel dies or is told to stop


@entry("crashed", ALL)
def os_exit() -> dict:
    """os._exit(0) in a cell kills the kernel: the cell is skipped and the
    notebook run again without it; right answers."""
    return insert(
        answered(), "import os\n\nos._exit(0)\n", after="q3-check", cell_id="x"
    )


@entry("crashed", ALL)
def segfault() -> dict:
    """A NULL read through ctypes: SIGSEGV kills the kernel, the cell is skipped,
    the rest graded; right answers."""
    source = "import ctypes\n\nctypes.string_at(0)\n"
    return insert(answered(), source, after="q5-check", cell_id="segv")


@entry("ok", ALL)
def sys_exit() -> dict:
    """sys.exit() raises SystemExit, which IPython catches like any error; the
    kernel goes on; right answers."""
    return insert(
        answered(), "import sys\n\nsys.exit()\n", after="q1-check", cell_id="x"
    )


@entry("ok", ALL)
def keyboard_interrupt() -> dict:
    """raise KeyboardInterrupt at top level: IPython reports it as the cell's
    error and goes on; right answers."""
    return insert(
        answered(), "raise KeyboardInterrupt\n", after="q7-check", cell_id="ctrl_c"
    )


@entry("ok", ALL)
def base_exception() -> dict:
    """raise BaseException at top level: a cell error, not the kernel's end;
    right answers."""
    source = 'raise BaseException("stop grading here")\n'
    return insert(answered(), source, after="q8-check", cell_id="base")


# --- resources


@entry("ok", ALL)
def memory_bomb() -> dict:
    """bytearray(50 GiB): over the address-space limit, so MemoryError at once,
    a cell error; right answers."""
    source = "hog = bytearray(50 * 2**30)\n"
    return insert(answered(), source, after="q2-check", cell_id="hog")


@entry("timeout", ALL)
def memory_bomb_growing() -> dict:
    """A list grown by 100 MB chunks that keeps retrying after MemoryError: it
    holds the kernel at its memory limit until the cell times out; the kernel is
    killed, the cell skipped; right answers."""
    source = (
        "hog = []\n"
        "while True:\n"
        "    try:\n"
        "        hog.append(bytearray(100 * 2**20))\n"
        "    except MemoryError:\n"
        "        pass  # wait for memory and try again\n"
    )
    return insert(answered(), source, after="q5-check", cell_id="hog")


@entry("timeout", ALL, sandbox=True)
def fork_bomb() -> dict:
    """Processes that fork forever and retry when fork fails: the pids cgroup
    caps them, the cell times out, all of them are killed; right answers."""
    source = (
        "import os\n\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    return insert(answered(), source, after="q6-check", cell_id="bomb")


@entry("ok", ALL, sandbox=True)
def daemon_popen() -> dict:
    """subprocess.Popen(['sleep', ...], start_new_session=True): the cell ends at
    once; the sleeper must die with the kernel (checked after the batch)."""
    source = (
        "import subprocess\n\n"
        f"subprocess.Popen(['sleep', '{SLEEP_POPEN}'], start_new_session=True)\n"
    )
    return insert(answered(), source, after="q1-check", cell_id="spawn")


@entry("ok", ALL, sandbox=True)
def daemon_double_fork() -> dict:
    """A classic double-fork daemon (fork, setsid, fork, exec sleep): it is
    reparented away from the kernel and must still die with it."""
    source = (
        "import os\n\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.closerange(0, 256)\n"
        f"        os.execvp('sleep', ['sleep', '{SLEEP_DAEMON}'])\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    return insert(answered(), source, after="q9-check", cell_id="daemon")


@entry("ok", ALL)
def huge_print() -> dict:
    """200 MB printed to stdout and 20 MB to stderr: output goes to /dev/null,
    costs nothing; right answers."""
    source = (
        "import sys\n\n"
        "line = 'x' * 2**20\n"
        "for _ in range(200):\n"
        "    print(line)\n"
        "for _ in range(20):\n"
        "    print(line, file=sys.stderr)\n"
    )
    return insert(answered(), source, after="q4-check", cell_id="shout")


@entry("ok", ALL, sandbox=True)
def huge_files() -> dict:
    """1 GB written to the working folder, to /tmp and as many 60 MB files: the
    file-size limit (64 MB) and the private 128 MB /tmp stop them with OSError,
    cell errors; nothing reaches the host; right answers."""
    write = (
        "block = b'\\0' * 2**20\n"
        "with open({path!r}, 'wb') as f:\n"
        "    for _ in range(1024):\n"
        "        f.write(block)\n"
    )
    many = (
        "for i in range(100):\n"
        f"    with open(f'/tmp/{FILE_MARKER}-{{i}}', 'wb') as f:\n"
        "        f.write(b'\\0' * 60 * 2**20)\n"
    )
    nb = answered()
    insert(nb, write.format(path=f"{FILE_MARKER}.bin"), after="q3-check", cell_id="a")
    insert(nb, write.format(path=f"/tmp/{FILE_MARKER}.bin"), after="a", cell_id="b")
    return insert(nb, many, after="b", cell_id="c")


_MEMORY_PROBE = """\
import mmap
import os
import select

_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000)


def _resident_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def _hold():
    \"\"\"{share} MB, resident at once; the MB it added to this process.\"\"\"
    before = _resident_mb()
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE
    block = mmap.mmap(-1, {share} * 2**20, flags=flags)
    return block, _resident_mb() - before


_report_r, _report_w = os.pipe()
_release_r, _release_w = os.pipe()
_children = []
for _ in range(2):
    _pid = os.fork()
    if _pid == 0:
        try:
            _block, _added = _hold()
        except BaseException:
            _added = 0
        os.write(_report_w, f"{{_added}}\\n".encode())
        os.read(_release_r, 1)
        os._exit(0)
    _children.append(_pid)
try:
    _block, _added = _hold()
except MemoryError:
    _block, _added = None, 0
_sizes = [_added]
_text = b""
while _text.count(b"\\n") < 2 and select.select([_report_r], [], [], 2.0)[0]:
    _text += os.read(_report_r, 100)
_sizes += [int(n) for n in _text.split()]
os.write(_release_w, b"xx")
for _pid in _children:
    os.waitpid(_pid, 0)
del _block
if sum(_sizes) > {limit}:
    _held = f"{{sum(_sizes)}} MB resident at once in 3 processes ({{_sizes}})"

    def overflows(a, b, op):
        return "over the {limit} MB memory limit: " + _held
"""


@entry("ok", ALL, sandbox=True, other_statuses=("crashed",))
def memory_across_processes() -> dict:
    """Right answers, but 02.1 answers with a report if the kernel and two
    forked children hold 3 x 400 MB resident at once: the memory limit
    (MEMORY_MB = 1024) must bound the submission, not each of its up to 64
    processes, so 20 (crashed is as right: an OOM kill may end the cell)."""
    probe = _MEMORY_PROBE.format(share=400, limit=MEMORY_MB)
    return insert(answered(), probe, after="q1-check", cell_id="mem")


@entry("ok", ALL, sandbox=True)
def sysv_shm_leak() -> dict:
    """Right answers, plus a 64 MB SysV shared memory segment, filled and
    detached: it must not outlive the kernel on the host (checked after the
    batch): 20."""
    source = f"""\
import ctypes

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_id = _libc.shmget({SHM_KEY:#x}, 64 * 2**20, 0o1000 | 0o600)  # IPC_CREAT
_addr = _libc.shmat(_id, None, 0)
if _addr not in (None, ctypes.c_void_p(-1).value):
    ctypes.memset(_addr, 1, 64 * 2**20)
    _libc.shmdt(ctypes.c_void_p(_addr))
"""
    return insert(answered(), source, after="q7-check", cell_id="shm")


# --- fooling the comparison


@entry("ok", WRONG_ALL)
def monkeypatch() -> dict:
    """Wrong answers, then numpy, builtins and qlib patched so that every
    comparison says equal: comparisons happen in the grader's process, so the
    wrong answers score exactly as wrong."""
    source = """\
import builtins

import numpy as np

import qlib
import qlib.feedback

np.array_equal = lambda *a, **k: True
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: True
np.testing.assert_array_equal = lambda *a, **k: None
_isinstance = builtins.isinstance
builtins.isinstance = lambda obj, cls: True if cls is bool else _isinstance(obj, cls)
qlib.feedback.compare = lambda *a, **k: ("exact", "")
qlib.feedback.check = lambda *a, **k: print("  PASS")
qlib.check = qlib.feedback.check
"""
    return insert(answered(WRONG), source, after="setup", cell_id="patch")


@entry("ok", WRONG_ALL)
def fake_modules() -> dict:
    """Wrong answers, then fake numpy, qlib, qlib.course.wire and qlib.feedback modules
    in sys.modules: the kernel already holds the real ones and the grader never
    imports from the kernel, so the wrong answers score exactly as wrong."""
    source = """\
import sys
import types


def _fake(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


_yes = lambda *a, **k: True
_fake("numpy", array_equal=_yes, allclose=_yes, ndarray=object, generic=object)
_fake("qlib.feedback", compare=lambda *a, **k: ("exact", ""))
_wire = _fake("qlib.course.wire", encode=lambda v: {"t": "pass"}, decode=lambda d: d)
_fake("qlib.course", wire=_wire)
_fake("qlib", course=sys.modules["qlib.course"], feedback=sys.modules["qlib.feedback"])
_fake("json", dumps=lambda *a, **k: '{"done": true}')
"""
    nb = answered(WRONG)
    return insert(nb, source, after="q9-check", cell_id="fakes")


_ALWAYS_EQUAL = '''\
class AlwaysEqual:
    """Equal to anything, by every comparison."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class Liar(np.ndarray):
    """An array that says it equals anything, elementwise and as a whole."""

    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool).view(Liar)

    def __ne__(self, other):
        return np.zeros(self.shape, dtype=bool).view(Liar)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return True

    def __array_function__(self, func, types, args, kwargs):
        return True

    def __bool__(self):
        return True


def lying(function):
    """Wrap an answer (a wrong one) so that it claims to equal anything."""

    def wrapper(*args):
        return function(*args).view(Liar)

    return wrapper
'''


@entry("ok", _with(WRONG_ALL, overflows=0, accumulator_bits=0, unpack_int4=2))
def always_equal() -> dict:
    """Objects that claim equality: an __eq__-is-True class for 02.1/02.2 (not
    plain data: fails), ndarray subclasses with lying __eq__/__array_ufunc__
    around the wrong answers of 02.3-02.8 (graded on their data: as wrong), and
    a fully masked array of 99s for 02.9 (its data is graded: only the two
    empty inputs pass, where an empty int8 array is right)."""
    nb = answered(WRONG)
    nb = insert(nb, _ALWAYS_EQUAL, after="setup", cell_id="liars")
    rewrap = ""
    for function in list(QID)[2:8]:
        rewrap += f"{function} = lying({function})\n"
    rewrap += (
        "def overflows(a, b, op):\n    return AlwaysEqual()\n\n\n"
        "def accumulator_bits(*args):\n    return AlwaysEqual()\n\n\n"
        "def unpack_int4(data):\n"
        "    wrong = np.full(2 * np.asarray(data).size, 99, dtype=np.int8)\n"
        "    return np.ma.masked_array(wrong, mask=True)\n"
    )
    return insert(nb, rewrap, after="q9-check", cell_id="wrap")


@entry("ok", WRONG_ALL)
def ipython_hooks() -> dict:
    """Wrong answers, plus an input transformer that turns every later check()
    into a printed PASS and pre/post_run_cell hooks that mark every question
    passed: they act inside the kernel only, so: as wrong."""
    source = """\
import qlib.feedback

ip = get_ipython()


def _all_pass(lines):
    return [line.replace("check(", "_fake_check(") for line in lines]


def _fake_check(question, *args, **kwargs):
    print(f"[{question.id}] all cases PASS")


def _mark_passed(*args):
    for key, result in list(qlib.feedback.RESULTS.items()):
        qlib.feedback.RESULTS[key] = qlib.feedback.CheckResult(
            result.question, result.total, result.total, True
        )


ip.input_transformers_post.append(_all_pass)
ip.events.register("pre_run_cell", _mark_passed)
ip.events.register("post_run_cell", _mark_passed)
"""
    return insert(answered(WRONG), source, after="setup", cell_id="hooks")


@entry("ok", WRONG_ALL)
def redefined_check() -> dict:
    """Wrong answers and a check() that always prints PASS: the grader ignores
    the notebook's checks, so: as wrong."""
    source = """\
import qlib
import qlib.feedback


def check(*args, **kwargs):
    print("  PASS  all cases (bit-exact)")


qlib.check = qlib.feedback.check = check
"""
    return insert(answered(WRONG), source, after="setup", cell_id="check")


@entry("ok", WRONG_ALL)
def atexit_hooks() -> dict:
    """Wrong answers, plus atexit hooks and a finalizer that would write forged
    'all passed' events on exit: the kernel leaves by os._exit, and forged
    events could not carry right answers anyway: as wrong."""
    source = """\
import atexit
import json
import os
import weakref

_forged = "".join(
    json.dumps({"call": i, "phase": "end", "value": {"t": "tuple", "v": [0, 0]}})
    + "\\n"
    for i in range(200)
).encode()


def _forge():
    for fd in range(1, 21):
        try:
            os.write(fd, _forged)
        except OSError:
            pass


atexit.register(_forge)


class _Sentinel:
    pass


_sentinel = _Sentinel()
weakref.finalize(_sentinel, _forge)
"""
    return insert(answered(WRONG), source, after="setup", cell_id="bye")


_PASS_ANSWERS = {
    function: f'def {function}(*args):\n    print("PASS")\n    return "PASS"\n'
    for function in QID
}


_FIND_CALLS = """\
def _find_calls():  # the kernel's list of calls: in a caller's locals, or anywhere
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, dict) and isinstance(value.get("calls"), list):
                return value["calls"]
        frame = frame.f_back
    for value in gc.get_objects():
        if isinstance(value, dict) and isinstance(value.get("calls"), list):
            return value["calls"]
    return []
"""


@entry("ok", NONE)
def forged_markers() -> dict:
    """Answers that return the string 'PASS' (never right), plus forged worker
    events -- for every call whose inputs match a visible example, a start and
    an end carrying that example's answer, then done -- a gradebook row and
    PASS lines, printed and written to every fd 3..20: the score may come only
    from what the functions return, so 0."""
    source = (
        """\
import gc
import json
import os
import sys

from qlib.course import wire

"""
        + _FIND_CALLS
        + "\n\n"
        + _LOOKUP_HELPER
        + """

_questions = [v for v in list(globals().values()) if type(v).__name__ == "Question"]
_lines = []
for _call in _find_calls():
    for _q in _questions:
        if _q.function != _call["function"]:
            continue
        try:
            _answer = _lookup(_q, *wire.decode(_call["args"]))
        except NotImplementedError:
            continue
        _lines.append({"call": _call["id"], "phase": "start"})
        _value = wire.encode(_answer)
        _lines.append({"call": _call["id"], "phase": "end", "value": _value})
_lines.append({"done": True})
_text = "".join(json.dumps(m) + "\\n" for m in _lines)
_text += "forged_markers,ok,20,20,2,2,3,3,2,1,3,2,2\\n"
_text += "  PASS  all cases (bit-exact)\\nScore: 20 / 20\\n"
print(_text)
print(_text, file=sys.stderr)
for _fd in range(3, 21):
    try:
        os.write(_fd, _text.encode())
    except OSError:
        pass
"""
    )
    return insert(answered(_PASS_ANSWERS), source, after="q9-check", cell_id="forge")


@entry("ok", NONE)
def exfiltrate_hidden_inputs() -> dict:
    """Finds the kernel's list of calls (every call's inputs, hidden ones
    included) up the stack or through gc, and raises errors carrying the
    hidden inputs, hoping the feedback shows them: every answer fails (0); the
    feedback test checks that no hidden input appears."""
    source = (
        """\
import gc
import sys

import numpy as np

from qlib.course import wire


"""
        + _FIND_CALLS
        + """

_leak = []
for _call in _find_calls():
    for _arg in wire.decode(_call["args"]):
        _arg = np.asarray(_arg)
        if _arg.dtype.kind in "iu" and _arg.size and _arg.max() > 10**8:
            _leak.append(" ".join(str(int(x)) for x in _arg.ravel()[:4]))
_text = " | ".join(_leak)


def _leaky(*args):
    raise ValueError(_text[:190])


raise ValueError(_text)
"""
    )
    leaky = {f: f"def {f}(*args):\n    return _leaky(*args)\n" for f in QID}
    return insert(answered(leaky), source, after="setup", cell_id="leak")


@entry("ok", _with(ALL, overflows=ALL["02.1"] - 3))
def huge_answer() -> dict:
    """Sums of int16 arrays answer with big arrays (4 million elements, 32 MB,
    for the visible 4-element input; 1 million, 8 MB, for the two hidden ones:
    legal on the wire, and wrong): those three cases fail and nothing else
    changes -- no timeout: 43 MB of JSON takes well under the 3 s call limit."""
    source = SOLUTION_ANSWERS["overflows"].replace(
        '    if op == "+":',
        '    if a.dtype == np.int16 and op == "+":\n'
        "        size = 4_000_000 if a.size == 4 else 1_000_000\n"
        "        return np.zeros(size, dtype=np.int64)\n"
        '    if op == "+":',
        1,
    )
    assert "4_000_000" in source
    return answered(overflows=source)


# --- the reference files


def _reader(body: str) -> str:
    """A cell that looks for the solution notebook and, if it can read one,
    runs its answer cells (which would make every answer right)."""
    return (
        """\
import glob
import json
import os
import subprocess
import zlib
from pathlib import Path

import qlib

_root = Path(qlib.__file__).resolve().parents[1]


def _use(text):
    nb = json.loads(text)
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in source:
            exec(source, globals())


"""
        + body
    )


_READ_FILES = f"""\
_places = [
    Path({str(SOLUTION)!r}),
    _root / "solutions" / "02_integer_encodings.ipynb",
    Path(qlib.__file__).parent.parent / "solutions" / "02_integer_encodings.ipynb",
]
_places += [Path(p) for p in glob.glob(str(_root / "*" / "*.ipynb"))]
for _dir, _dirs, _files in os.walk(_root):
    _dirs[:] = [d for d in _dirs if d not in (".venv", ".git")]
    _places += [Path(_dir) / f for f in _files if f.endswith(".ipynb")]
for _place in _places:
    try:
        _use(_place.read_text())
    except (OSError, ValueError, KeyError):
        pass
"""

_READ_GIT = """\
_text = subprocess.run(
    ["git", "-C", str(_root), "show", "HEAD:solutions/02_integer_encodings.ipynb"],
    capture_output=True,
    text=True,
).stdout
if not _text:  # no git binary: read the loose objects
    for _object in glob.glob(str(_root / ".git" / "objects" / "??" / "*")):
        try:
            _blob = zlib.decompress(Path(_object).read_bytes())
        except (OSError, zlib.error):
            continue
        if _blob.startswith(b"blob ") and b"### BEGIN SOLUTION" in _blob:
            _text = _blob.split(b"\\0", 1)[1].decode()
            break
if _text:
    _use(_text)
"""


@entry("ok", WRONG_ALL, sandbox=True)
def read_reference() -> dict:
    """Wrong answers, then reads the solution notebook by its absolute path,
    through qlib's package path and by walking/globbing the course folder, and
    runs its answers if found: the solutions folder is hidden, so: as wrong."""
    return insert(answered(WRONG), _reader(_READ_FILES), after="q9-check", cell_id="r")


@entry("ok", WRONG_ALL, sandbox=True)
def read_reference_git() -> dict:
    """Wrong answers, then reads the solution from the course's git history
    (git show HEAD:solutions/..., or zlib on .git/objects) and runs its answers:
    the reference must be out of reach in every form, so: as wrong."""
    return insert(answered(WRONG), _reader(_READ_GIT), after="q9-check", cell_id="g")


@entry("ok", WRONG_ALL, sandbox=True)
def rewrite_reference() -> dict:
    """Wrong answers, then tries to overwrite, truncate, rename and delete the
    solution notebook and qlib/feedback.py (to make compare always pass): the
    file system is read-only and the files must be byte-identical afterwards."""
    source = f"""\
import os
from pathlib import Path

import qlib
import qlib.feedback

_root = Path(qlib.__file__).resolve().parents[1]
_targets = [
    Path({str(SOLUTION)!r}),
    _root / "solutions" / "02_integer_encodings.ipynb",
    Path(qlib.feedback.__file__),
]
_patch = "\\ncompare = lambda *a, **k: ('exact', '')\\n"
for _target in _targets:
    for _attempt in (
        lambda: _target.open("a").write(_patch),
        lambda: os.truncate(_target, 0),
        lambda: os.chmod(_target, 0o777),
        lambda: os.utime(_target, (0, 0)),
        lambda: os.rename(_target, str(_target) + ".bak"),
        lambda: os.unlink(_target),
    ):
        try:
            _attempt()
        except OSError:
            pass
"""
    return insert(answered(WRONG), source, after="q9-check", cell_id="w")


_PROBE = """\
import os

_writable = []
for _path in {paths!r}:
    try:
        os.close(os.open(_path, os.O_WRONLY))  # opened, never written
    except OSError:
        continue
    _writable.append(_path)
if _writable:
    def overflows(a, b, op):
        return "writable from the sandbox: " + ", ".join(_writable)
"""


@entry("ok", ALL, sandbox=True)
def proc_sys_writable() -> dict:
    """Right answers, but 02.1 answers with a report if the kernel can open
    host-wide kernel settings for writing (/proc/sys: core_pattern runs a
    program as real root on the next crash; hostname; drop_caches): none may
    be writable, so 20."""
    paths = (
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/hostname",
        "/proc/sys/vm/drop_caches",
        "/proc/sysrq-trigger",
    )
    return insert(answered(), _PROBE.format(paths=paths), after="q1-check", cell_id="p")


@entry("ok", ALL, sandbox=True)
def host_devices_writable() -> dict:
    """Right answers, but 02.1 answers with a report if the kernel can open a
    host device for writing (/dev/kmsg: fake kernel log lines; block devices):
    none may be writable, so 20."""
    paths = ("/dev/kmsg", "/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0")
    return insert(answered(), _PROBE.format(paths=paths), after="q1-check", cell_id="p")


# --- notebook structure


@entry("ok", _with(ALL, encode_sign_magnitude=0))
def deleted_cell() -> dict:
    """Question 4's answer cell deleted: encode_sign_magnitude is undefined, so
    02.4 scores 0 and the rest is graded normally: 17."""
    nb = answered()
    cell_id = _answer_cell_id(nb, "encode_sign_magnitude")
    nb["cells"] = [c for c in nb["cells"] if c.get("id") != cell_id]
    return nb


@entry("ok", ALL)
def duplicated_cells() -> dict:
    """Every code cell run twice (copy-pasted): the same definitions twice: 20."""
    nb = answered()
    cells = []
    for cell in nb["cells"]:
        cells.append(cell)
        if cell["cell_type"] == "code":
            twin = copy.deepcopy(cell)
            twin["id"] = cell["id"] + "-copy"
            cells.append(twin)
    nb["cells"] = cells
    return nb


@entry("ok", ALL)
def split_cells() -> dict:
    """Question 3's and 7's answers split over two cells each (a helper, then
    the function): the graded functions are whole when called: 20."""
    nb = answered(
        decode_twos_complement='''\
def decode_twos_complement(codes: np.ndarray, bits: int) -> np.ndarray:
    """The int64 values of ``bits``-bit two's-complement codes."""
    c = np.asarray(codes).astype(np.int64)
    half = _sign_weight(bits)
    return (c ^ half) - half
''',
        sign_extend='''\
def sign_extend(codes: np.ndarray, bits: int, new_bits: int) -> np.ndarray:
    """Widen ``bits``-bit two's-complement codes to ``new_bits`` bits (uint64)."""
    c = np.asarray(codes).astype(np.uint64)
    sign = (c >> np.uint64(bits - 1)) & np.uint64(1)
    return c | (sign * _high_ones(bits, new_bits))
''',
    )
    insert(
        nb,
        "def _sign_weight(bits):\n    return np.int64(1) << np.int64(bits - 1)\n",
        after="q2-check",
        cell_id="q3-helper",
    )
    return insert(
        nb,
        "def _high_ones(bits, new_bits):\n"
        "    return np.uint64(2**new_bits - 1) ^ np.uint64(2**bits - 1)\n",
        after="q6-check",
        cell_id="q7-helper",
    )


@entry("ok", ALL)
def reordered_cells() -> dict:
    """Every check cell moved before every answer cell: the checks fail with
    NameError while the notebook runs, but the functions exist when graded: 20."""
    nb = answered()
    checks = [c for c in nb["cells"] if str(c.get("id", "")).endswith("-check")]
    rest = [c for c in nb["cells"] if c not in checks]
    setup = next(i for i, c in enumerate(rest) if c.get("id") == "setup")
    nb["cells"] = rest[: setup + 1] + checks + rest[setup + 1 :]
    return nb


@entry("ok", ALL)
def stripped_metadata() -> dict:
    """Notebook and cell metadata, execution counts and outputs removed: only
    the code matters: 20."""
    nb = answered()
    nb.pop("metadata", None)
    for cell in nb["cells"]:
        for key in ("metadata", "execution_count", "outputs"):
            cell.pop(key, None)
    return nb


@entry("ok", ALL)
def regenerated_ids() -> dict:
    """Every cell id replaced by a fresh random one (as a copy to another
    Jupyter does): ids are not used for grading: 20."""
    nb = answered()
    rng = random.Random(2)
    for cell in nb["cells"]:
        cell["id"] = f"{rng.getrandbits(64):016x}"
    return nb


@entry("invalid", NONE)
def invalid_json() -> bytes:
    """The correct notebook cut off half way (a failed upload): not JSON, so
    invalid and 0, and the batch goes on."""
    text = json.dumps(answered(), indent=1).encode()
    return text[: len(text) // 2]


@entry("ok", ALL)
def missing_kernelspec() -> dict:
    """No kernelspec or language_info in the metadata: the grader runs code
    cells as Python regardless: 20."""
    nb = answered()
    nb["metadata"].pop("kernelspec", None)
    nb["metadata"].pop("language_info", None)
    return nb


@entry("ok", ALL)
def magics() -> dict:
    """%time, %%capture, %timeit, %load_ext, and !pip / %pip install (shell
    commands are disabled while grading, nothing is installed): right answers: 20."""
    nb = answered()
    insert(nb, "%time total = sum(range(1000))\n", after="setup", cell_id="m1")
    insert(nb, "%%capture captured\nprint('hidden')\n", after="m1", cell_id="m2")
    insert(nb, "!pip install tqdm\n%pip install tqdm\n", after="m2", cell_id="m3")
    insert(nb, "%timeit -n 1 -r 1 pass\n", after="q5-check", cell_id="m4")
    return insert(
        nb, "%load_ext autoreload\n%autoreload 2\n", after="q8-check", cell_id="m5"
    )


@entry("ok", ALL)
def noise() -> dict:
    """Warnings, prints to stderr, a matplotlib figure, an ipywidgets slider and
    a \\r progress bar, around right answers: harmless output costs nothing: 20."""
    nb = answered()
    insert(
        nb,
        "import warnings\n\nwarnings.warn('this is only noise')\n"
        "import sys\n\nprint('debug: starting', file=sys.stderr)\n",
        after="setup",
        cell_id="n1",
    )
    insert(
        nb,
        "import matplotlib.pyplot as plt\n\n"
        "fig, ax = plt.subplots()\nax.plot(np.arange(-8, 8), np.arange(-8, 8) % 16)\n"
        "plt.show()\n",
        after="q3-check",
        cell_id="n2",
    )
    insert(
        nb,
        "import ipywidgets as widgets\nfrom IPython.display import display\n\n"
        "slider = widgets.IntSlider(value=4, min=1, max=64)\ndisplay(slider)\n",
        after="q5-check",
        cell_id="n3",
    )
    return insert(
        nb,
        "for i in range(101):\n"
        "    print(f'\\r[{\"#\" * (i // 5):<20}] {i}%', end='', flush=True)\n"
        "print()\n",
        after="q8-check",
        cell_id="n4",
    )


@entry("invalid", NONE)
def cells_not_list() -> dict:
    """JSON whose "cells" is a dict, not a list: not a notebook: invalid, 0."""
    nb = answered()
    nb["cells"] = {str(i): cell for i, cell in enumerate(nb["cells"])}
    return nb


@entry("invalid", NONE)
def empty_file() -> bytes:
    """An empty .ipynb file (an upload of nothing): invalid, 0."""
    return b""


# --------------------------------------------------------------------- output


def entries() -> dict[str, Expected]:
    """Every entry's expected outcome, by name."""
    return {name: expected for name, (_build, expected) in _ENTRIES.items()}


def build(name: str) -> bytes:
    """The file content of one entry."""
    made = _ENTRIES[name][0]()
    if isinstance(made, bytes):
        return made
    return (json.dumps(made, indent=1, ensure_ascii=False) + "\n").encode()


def write_corpus(folder: Path, *, sandboxed: bool = True) -> dict[str, Expected]:
    """Write every entry to ``folder/<name>.ipynb``; return the expected outcomes.

    Without the root sandbox (``sandboxed=False``) the entries that are only
    safe inside it (fork bomb, daemons, huge files, reading and rewriting the
    reference, probes) are left out.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (_build, expected) in _ENTRIES.items():
        if expected.sandbox and not sandboxed:
            continue
        (folder / f"{name}.ipynb").write_bytes(build(name))
        written[name] = expected
    return written
