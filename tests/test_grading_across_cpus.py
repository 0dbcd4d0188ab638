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
qlib.course.reference and written as Gradescope's zip writes them
(qlib.course.gradescope.recorded_json); a child process with OpenBLAS's
Sandybridge kernels and NumPy's baseline loops (no AVX2, no AVX-512: the
furthest from the recording this CPU can go) reads them back as the
autograder does, runs the solution notebooks and checks every recorded
case with qlib.feedback.check.
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

# the child: the solutions run on the other code, then qlib.feedback.check
# each recorded question on them, as the autograder reads the record back
ANSWER = r"""
import contextlib, io, json, sys
from pathlib import Path
from qlib import feedback
from qlib.course import gradescope, reference

cases, failures = 0, []
for data in json.loads(Path(sys.argv[1]).read_text()):
    recorded = gradescope.load_recorded(data, Path(sys.argv[1]))
    solutions = reference.COURSE_ROOT / "solutions"
    path = reference.find_solution(data["assignment"], solutions)
    namespace = reference.run_solution(path, lambda *args, **kwargs: None)
    for qid, graded in recorded.questions.items():
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            feedback.check(graded.question, namespace[graded.question.function],
                           [case for case, _hidden in graded.cases])
        cases += len(graded.cases)
        if not feedback.RESULTS[qid].ok:
            failures.append(said.getvalue())
print(json.dumps({"cases": cases, "failures": failures}))
"""


@needs_avx2
def test_recorded_cases_grade_the_solution_on_other_cpu_code(tmp_path):
    recorded = [
        gradescope.recorded_json(reference.load_reference(assignment))
        for assignment in ASSIGNMENTS
    ]
    cases = tmp_path / "reference.json"
    cases.write_text(json.dumps(recorded), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", ANSWER, str(cases)],
        env={**os.environ, **OTHER_CODE}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout.splitlines()[-1])
    assert said["cases"] == sum(
        len(q["cases"]) for d in recorded for q in d["questions"]
    )
    assert said["cases"] > 100
    assert said["failures"] == [], "\n".join(said["failures"])


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
