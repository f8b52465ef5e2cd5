"""The exit status every `vddk-conformance` command uses, so a lab's scripts can tell why a command stopped.

    0    done, and nothing wrong was found
    1    done, and something is wrong: a test failed, a preflight found a problem, a bundle does not verify, a
         probe was not detected
    2    bad input, nothing was done: an unknown option, a target file, product file or report folder that
         cannot be used (one line says what and how to fix it)
    3    the harness itself failed (a bug: please report it with the output)
    5    `run` selected no test
    130  interrupted (Ctrl-C, SIGTERM): teardowns ran, reports may be partial

pytest's own statuses differ (2 interrupted, 3 internal error, 4 usage error); `vddk-conformance run` maps them.
The harness's fixtures stop a run on bad input with ``pytest.exit(message, USAGE)``, pytest's usage status.
"""

from __future__ import annotations

OK = 0
PROBLEMS = 1
BAD_INPUT = 2
INTERNAL = 3
NO_TESTS = 5
INTERRUPTED = 130

#: what the harness's fixtures pass to pytest.exit for bad input (pytest's USAGE_ERROR), mapped to BAD_INPUT
USAGE = 4

_FROM_PYTEST = {0: OK, 1: PROBLEMS, 2: INTERRUPTED, 3: INTERNAL, 4: BAD_INPUT, 5: NO_TESTS}


def from_pytest(code: int) -> int:
    """The command's status for a pytest session's exit status."""
    return _FROM_PYTEST.get(int(code), INTERNAL)
