"""The course machinery, apart from the subject: how notebooks are stored and
exercises made, and how submissions are graded.

Storage and exercises
    :mod:`~qlib.course.assignments` -- execute and store notebooks byte-stably;
    generate ``exercises/`` from ``solutions/``.

The grader (the ``grade`` command, also ``python -m qlib.course``)
    :mod:`~qlib.course.cli` -- the command line and its exit statuses;
    :mod:`~qlib.course.grade` -- one batch: the canary, each submission, scores;
    :mod:`~qlib.course.reference` -- what is graded against (the solution's
    recorded checks), limits and results;
    :mod:`~qlib.course.sandbox` -- how a kernel is isolated, and what it keeps;
    :mod:`~qlib.course.kernel` -- one kernel process, driven by the grader;
    :mod:`~qlib.course.worker` -- the kernel process itself;
    :mod:`~qlib.course.wire` -- the plain-data channel answers come back on;
    :mod:`~qlib.course.reports` -- gradebook, feedback, results.json;
    :mod:`~qlib.course.gradescope` -- the Gradescope autograder zip and runner.

Learners never import this package; what they use, :mod:`qlib.feedback`, is
part of the subject.  Nothing is imported here, so that the kernel process
starts with as little as possible.
"""
