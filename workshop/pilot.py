"""Timing a pilot: what a learner did and when, written as they work, and the report made from it.

The setup cell (``workshop.setup()``) and every check verdict (``checks._report.passed``/``fail``)
append one JSON line to ``.workshop/pilot.jsonl`` in the repository (git-ignored)::

    {"ts": 1764680000.0, "time": "2026-12-02T12:40:00+00:00", "kind": "pass", "lesson": "03",
     "exercise": "3.2", "check": "nb03.check_first_words", "pid": 4242}

``kind`` is ``setup``, ``pass`` or ``fail``. The lesson comes from the check's module (``nb03``) or,
for the setup cell, the notebook's file name as Jupyter gives it to the kernel (``JPY_SESSION_NAME``);
where the kernel does not know it, the report takes the lesson of the checks run by the same process.

Recording is on by default in a learner's JupyterLab and off under pytest (nbmake included: the
kernel inherits ``PYTEST_CURRENT_TEST``) and CI (``CI`` or ``GITHUB_ACTIONS`` set), so test runs do
not pollute the log. ``WORKSHOP_PILOT_LOG=off`` turns it off, ``=on`` turns it on even there;
``WORKSHOP_PILOT_FILE`` writes elsewhere. Recording never raises into the notebook: a log that
cannot be written is skipped.

    python -m workshop.pilot                       # this clone's .workshop/pilot.jsonl
    python -m workshop.pilot --file a.jsonl --file b.jsonl   # several learners: medians per lesson

A lesson's time runs from its setup cell to its last check pass; an exercise's from the previous
milestone (the setup, or another exercise's first pass) to its own first pass.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_ENV = "WORKSHOP_PILOT_LOG"  # off | on; unset: on, except under pytest or CI
FILE_ENV = "WORKSHOP_PILOT_FILE"
DEFAULT_LOG = ROOT / ".workshop" / "pilot.jsonl"
TOLERANCE = 0.20  # issue 12: a walkthrough matches the stated time within 20 %
_CHECK_MODULE = re.compile(r"workshop\.checks\.nb(\d\d)$")
_LESSON_FILE = re.compile(r"(?:^|[/\\])(\d\d)_[^/\\]*\.ipynb$")


# -- recording ------------------------------------------------------------------------------------

def enabled() -> bool:
    """Whether events are recorded: ``WORKSHOP_PILOT_LOG`` decides; unset, not under pytest or CI."""
    setting = os.environ.get(LOG_ENV, "").strip().lower()
    if setting in ("off", "0", "false", "no"):
        return False
    if setting in ("on", "1", "true", "yes"):
        return True
    automated = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS")
    return not any(os.environ.get(name, "").strip().lower() not in ("", "0", "false") for name in automated)


def log_path() -> Path:
    return Path(os.environ.get(FILE_ENV) or DEFAULT_LOG)


def _append(event: dict) -> None:
    now = time.time()
    line = {"ts": now, "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            **event, "pid": os.getpid()}
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:  # one write per line: lines from kernels never mix
        log.write(json.dumps(line) + "\n")


def _notebook_path() -> str | None:
    """The running notebook's path, where the kernel knows it (JupyterLab, VS Code)."""
    if os.environ.get("JPY_SESSION_NAME"):
        return os.environ["JPY_SESSION_NAME"]
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    namespace = getattr(shell, "user_ns", None) or {}
    return namespace.get("__session__") or namespace.get("__vsc_ipynb_file__")


def lesson_of_notebook(path: str | None) -> str | None:
    match = _LESSON_FILE.search(path or "")
    return match.group(1) if match else None


def record_setup() -> None:
    """The setup cell ran. Never raises."""
    try:
        if not enabled():
            return
        notebook = _notebook_path()
        if notebook is None and "ipykernel" not in sys.modules:
            return  # make serve, make serve-prod: setup() outside a notebook is no lesson
        _append({"kind": "setup", "lesson": lesson_of_notebook(notebook)})
    except Exception:  # noqa: BLE001 - a pilot log must never break the learner's notebook
        pass


def _calling_check() -> tuple[str | None, str | None]:
    """(lesson, "nbNN.check_name") of the check function on the stack: the outermost, the one a
    check cell calls."""
    frame = sys._getframe(2)
    lesson = check = None
    while frame is not None:
        match = _CHECK_MODULE.match(frame.f_globals.get("__name__", ""))
        if match:
            lesson = match.group(1)
            if frame.f_code.co_name.startswith("check_"):
                check = f"nb{lesson}.{frame.f_code.co_name}"
        frame = frame.f_back
    return (check[2:4] if check else lesson), check


@cache
def exercise_of_check(check: str) -> str | None:
    """The exercise id ("3.2") whose check cell calls ``check`` ("nb03.check_first_words"), read
    from the lesson's solution notebook: the last ``## Exercise N.M`` heading above the call."""
    lesson = check[2:4]
    for notebook in sorted((ROOT / "solutions").glob(f"{lesson}_*.ipynb")):
        exercise = None
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] == "markdown":
                headings = re.findall(r"^## Exercise (\d+\.\d+)", source, re.MULTILINE)
                exercise = headings[-1] if headings else exercise
            elif re.search(rf"\b{re.escape(check)}\(", source):
                return exercise
    return None


def record_verdict(ok: bool) -> None:
    """A check printed its verdict (called by ``passed`` and ``fail``). Never raises."""
    try:
        if enabled():
            lesson, check = _calling_check()
            _append({"kind": "pass" if ok else "fail", "lesson": lesson,
                     "exercise": exercise_of_check(check) if check else None, "check": check})
    except Exception:  # noqa: BLE001 - a pilot log must never break the learner's notebook
        pass


# -- the report -----------------------------------------------------------------------------------

def read_events(path: Path) -> list[dict]:
    """The events of one log, in time order; lines that are not events are skipped."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("ts"), (int, float)) and event.get("kind"):
            events.append(event)
    return sorted(events, key=lambda e: e["ts"])


def _assign_setups(events: list[dict]) -> list[dict]:
    """Give a setup without a lesson the lesson of the next check run by the same process."""
    out = []
    for i, event in enumerate(events):
        if event["kind"] == "setup" and not event.get("lesson"):
            later = (e for e in events[i + 1:] if e.get("pid") == event.get("pid") and e["kind"] != "setup")
            lesson = next((e["lesson"] for e in later if e.get("lesson")), None)
            event = {**event, "lesson": lesson}
        out.append(event)
    return out


@dataclass
class ExerciseTiming:
    passed: bool = False
    seconds: float | None = None  # from the previous milestone to the first pass (None: unknown)
    failed: int = 0  # failed checks before the first pass (all of them if it never passed)


@dataclass
class LessonTiming:
    """One learner's lesson: setup to last check pass, and each exercise."""

    seconds: float | None = None  # None: no setup recorded, or no check passed
    exercises: dict[str, ExerciseTiming] = field(default_factory=dict)


def lesson_timings(events: Iterable[dict]) -> dict[str, LessonTiming]:
    """One learner's log, lesson by lesson."""
    by_lesson: dict[str, list[dict]] = {}
    for event in _assign_setups(sorted(events, key=lambda e: e["ts"])):
        if event.get("lesson"):
            by_lesson.setdefault(event["lesson"], []).append(event)
    timings = {}
    for lesson, lesson_events in sorted(by_lesson.items()):
        timing = LessonTiming()
        setups = [e["ts"] for e in lesson_events if e["kind"] == "setup"]
        passes = [e["ts"] for e in lesson_events if e["kind"] == "pass"]
        start = setups[0] if setups else None
        if start is not None and passes:
            timing.seconds = passes[-1] - start
        milestone = start
        for event in lesson_events:
            exercise = event.get("exercise") or event.get("check")
            if event["kind"] not in ("pass", "fail") or not exercise:
                continue
            found = timing.exercises.setdefault(exercise, ExerciseTiming())
            if found.passed:
                continue  # after the first pass: a re-run, not an attempt
            if event["kind"] == "fail":
                found.failed += 1
            else:
                found.passed = True
                found.seconds = event["ts"] - milestone if milestone is not None else None
                milestone = event["ts"]
        timings[lesson] = timing
    return timings


def _exercise_key(exercise: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in exercise.split(".")) + (exercise,)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def verdict(measured_minutes: float, low: int, high: int) -> str:
    """Where a measured time falls against a stated range, with the ±20 % of issue 12."""
    if measured_minutes < low * (1 - TOLERANCE):
        return "FASTER than stated by more than 20%"
    if measured_minutes > high * (1 + TOLERANCE):
        return "SLOWER than stated by more than 20%"
    return "within 20%"


def report(logs: dict[str, list[dict]], stated: dict) -> str:
    """The report for these learners' logs (name -> events) against the stated minutes."""
    learners = {name: lesson_timings(events) for name, events in logs.items()}
    lessons = sorted({lesson for timings in learners.values() for lesson in timings})
    many = len(learners) > 1
    lines = [f"Pilot timings from {len(learners)} log(s): {', '.join(learners) or 'none'}.",
             "A lesson runs from its setup cell to its last check pass"
             + (" (median over learners)." if many else ".")]
    if not lessons:
        return "\n".join([*lines, "No lesson recorded."])
    flagged = []
    for lesson in lessons:
        per_learner = [t[lesson] for t in learners.values() if lesson in t]
        minutes = [t.seconds / 60 for t in per_learner if t.seconds is not None]
        median = _median(minutes)
        limits = stated.get(lesson)
        stated_text = f"stated {limits}" if limits else "not in the README table"
        if median is None:
            head = f"Lesson {lesson}: no time (no setup, or no check passed); {stated_text}"
        else:
            head = f"Lesson {lesson}: {median:.0f} min"
            if many:
                head += f" (n={len(minutes)}: {', '.join(f'{m:.0f}' for m in sorted(minutes))})"
            head += f"; {stated_text}"
            if limits:
                judged = verdict(median, limits.low, limits.high)
                head += f": {judged}"
                if judged != "within 20%":
                    flagged.append(lesson)
        lines.append(head)
        for exercise in sorted({e for t in per_learner for e in t.exercises}, key=_exercise_key):
            found = [t.exercises[exercise] for t in per_learner if exercise in t.exercises]
            done = [f.seconds / 60 for f in found if f.seconds is not None]
            failed = _median([f.failed for f in found])
            passes = sum(f.passed for f in found)
            took = f"{_median(done):.1f} min" if done else ("passed, time unknown (no setup)" if passes
                                                             else "never passed")
            if passes != len(found):
                took += f" ({len(found) - passes} of {len(found)} never passed)" if many else ""
            lines.append(f"  Exercise {exercise}: {took}, {failed:g} failed attempt(s)"
                         + (" (median)" if many else ""))
    lines.append("Outside ±20% of the stated time: " + (", ".join(flagged) if flagged else "none")
                 + ". Update README's table and each notebook's first cell together (tests/test_readme.py).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workshop.pilot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", action="append", type=Path, metavar="PILOT_JSONL",
                        help="a learner's .workshop/pilot.jsonl (repeat for several learners); "
                             f"default: {DEFAULT_LOG.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    from .readme import stated_minutes

    files = args.file or [log_path()]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"No pilot log at {', '.join(missing)}: run the notebooks first (see FACILITATORS.md, "
              "'Timing a pilot').", file=sys.stderr)
        return 1
    names = [str(f) for f in files]
    logs = {name if names.count(name) == 1 else f"{name}#{i}": read_events(f)
            for i, (name, f) in enumerate(zip(names, files, strict=True))}
    print(report(logs, stated_minutes()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
