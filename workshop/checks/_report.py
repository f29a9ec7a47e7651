"""How a check cell reports: one line for success, a reason and a hint for failure.

Run the learner's code inside ``learner_output()``: what it prints still appears (live, so a
stream still looks like a stream), the check can read it back, and ``passed``/``fail`` start their
line on a fresh line when that output ended without a newline.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import NoReturn, TextIO

from .. import pilot

# Whether the learner's output, as last seen by learner_output(), ended in the middle of a line.
_line_open = False


class CheckFailed(AssertionError):
    """A check found a wrong answer. The message says what is wrong and hints at a fix."""


def _fresh_line() -> str:
    global _line_open
    prefix, _line_open = ("\n" if _line_open else ""), False
    return prefix


def passed(message: str) -> None:
    print(f"{_fresh_line()}✅ {message}")
    pilot.record_verdict(True)  # a pilot's timing (workshop/pilot.py); off under tests and CI


def fail(what: str, hint: str, *, printed: str | None = None) -> NoReturn:
    """Print and raise: the printed lines stay readable above the short traceback.

    ``printed``: what the learner's code printed on the run the check complains about, when it was
    captured without being shown (``learner_output(show=False)``); it is shown first, quoted.
    """
    start = _fresh_line()
    if printed is not None:
        quoted = "\n".join(f"   │ {line}" for line in printed.rstrip("\n").split("\n")) if printed.strip() \
            else "   │ (nothing)"
        start += f"Your code printed:\n{quoted}\n"
    print(f"{start}❌ {what}\n   Hint: {hint}")
    pilot.record_verdict(False)
    raise CheckFailed(f"{what} Hint: {hint}")


class LearnerOutput(io.TextIOBase):
    """stdout while the learner's code runs: passed on to the real stdout (if shown) and kept.

    ``text`` is everything written; ``text_writes`` counts the writes holding text, to tell
    streaming (many writes) from one print at the end.
    """

    def __init__(self, target: TextIO | None) -> None:
        super().__init__()
        self._target = target
        self._parts: list[str] = []
        self.text_writes = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._parts.append(s)
        self.text_writes += bool(s.strip())
        if self._target is not None:
            self._target.write(s)
        return len(s)

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def getvalue(self) -> str:  # the io.StringIO name, for callers written against it
        return self.text


@contextlib.contextmanager
def learner_output(show: bool = True) -> Iterator[LearnerOutput]:
    """Capture what the learner's code prints in the block; ``show`` also prints it as it comes.

    With ``show=False`` nothing reaches the notebook: pass ``printed=output.text`` to ``fail`` so
    the learner still sees what their code printed on the failing run.
    """
    global _line_open
    output = LearnerOutput(sys.stdout if show else None)
    unfinished = False
    try:
        with contextlib.redirect_stdout(output):
            yield output
    except NotImplementedError:
        unfinished = True  # an unfinished exercise: the cell ends with its traceback, no verdict
        raise
    finally:
        text = output.text
        if unfinished:
            _line_open = False
        elif show and text:  # a block that printed nothing leaves the line as it was
            _line_open = not text.endswith("\n")
