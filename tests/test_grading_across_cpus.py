"""A Gradescope autograder carries cases recorded on the instructor's machine
(reference/reference.json) and grades on Gradescope's, whose CPU may run
other code: other OpenBLAS kernels, NumPy loops without AVX2 or with
AVX-512 (tools/pin_cpu.py).  Some recorded inputs depend on that code
(measured on an AVX-512 Xeon, pinned against NumPy's own choice: the
generated inputs of 03.6, 04.4, 05.1, 05.2, 05.4 and 10.5, all bit-exact
questions, differ), so what has to hold is that the reference solution,
run on other code, still answers every recorded case as the questions
demand.  A correct submission must never lose points to the grading CPU.

The cases are recorded here (pinned, as the suite runs) through
qlib.course.reference and the wire format Gradescope's zip uses; a child
process with OpenBLAS's Sandybridge kernels and NumPy's baseline loops (no
AVX2, no AVX-512: the furthest from the recording this CPU can go) runs
the solution notebooks and answers them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_pin_cpu import needs_avx2

from qlib.course import gradescope, reference

ROOT = Path(__file__).resolve().parents[1]
# the assignments whose recorded inputs move with the CPU code (above)
ASSIGNMENTS = ("01", "03", "04", "05", "10")
OTHER_CODE = {
    "OPENBLAS_CORETYPE": "Sandybridge",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
}

ANSWER = r"""
import contextlib, io, json, os, sys
import matplotlib
matplotlib.use("Agg")
import qlib
from qlib import feedback
from qlib.course import reference, wire

recorded, failures = json.load(open(sys.argv[1])), []
for assignment in sorted({qid[:2] for qid in recorded}):
    path = reference.find_solution(assignment, reference.COURSE_ROOT / "solutions")
    namespace = {"__name__": "__main__"}
    feedback.check = qlib.check = lambda *args, **kwargs: None
    os.chdir(path.parent)
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                exec("".join(cell["source"]), namespace)
    for qid, q in recorded.items():
        if qid[:2] != assignment:
            continue
        for i, case in enumerate(q["cases"]):
            got = namespace[q["function"]](
                *wire.decode(case["args"]), **wire.decode(case["kwargs"]))
            verdict, detail = feedback.compare(
                wire.decode(case["expected"]), got, q["rtol"], q["atol"],
                q["check_dtype"])
            if not (verdict == "exact" or (verdict == "close" and not q["exact"])):
                failures.append(f"{qid} case {i + 1}: {verdict} {detail}")
print(json.dumps({"cases": sum(len(q["cases"]) for q in recorded.values()),
                  "failures": failures}))
"""


@needs_avx2
def test_recorded_cases_grade_the_solution_on_other_cpu_code(tmp_path):
    recorded = {}
    for assignment in ASSIGNMENTS:
        for graded in reference.load_reference(assignment).questions.values():
            recorded[graded.question.id] = gradescope._question_json(graded)
    cases = tmp_path / "reference.json"
    cases.write_text(json.dumps(recorded), encoding="utf-8")
    env = {**os.environ, **OTHER_CODE}
    done = subprocess.run(
        [sys.executable, "-c", ANSWER, str(cases)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout.splitlines()[-1])
    assert said["cases"] == sum(len(q["cases"]) for q in recorded.values()) > 100
    assert said["failures"] == []


@needs_avx2
def test_the_other_code_is_other():
    """The child really computes otherwise: Sandybridge's kernels, and none
    of NumPy's AVX2 or AVX-512 loops."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "import pin_cpu; print(pin_cpu.core(), pin_cpu.avx2_loops(), "
        "pin_cpu.avx512_loops())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **OTHER_CODE},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Sandybridge", "False", "[]"]
