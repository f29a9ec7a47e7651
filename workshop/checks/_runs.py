"""What the learner's code asked ADK to do: every ``Runner.run_async`` call made during a check.

Checks judge behaviour, and some behaviour leaves no trace in the answer: a run without
``StreamingMode.SSE`` stores the same final text; prompts sent to one shared session get the same
replies from a model that reads only the last message. So while the learner's function runs, the
check records each call (``runner.run()`` included: it calls ``run_async`` on its thread) and the
generator it returned, unchanged. Only weakly, unless asked to hold it: a check that kept every
generator alive would change what a bare ``break`` does (see ``runs_observed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.adk.agents.run_config import RunConfig, StreamingMode


@dataclass
class RunCall:
    """One ``run_async`` call: who asked what, in which session, how, and the generator it got."""

    runner: Any
    user_id: str | None
    session_id: str | None
    text: str  # the new message's text ("" without one)
    run_config: RunConfig  # what the run used: RunConfig() when none was passed
    abort_signal: asyncio.Event | None
    _generator: Any  # the generator itself (held) or a weak reference to it
    finished_before: int = 0  # how many runs recorded earlier had already ended at this call
    # With runs_observed(timed=True): (seconds since the call, event) as each event was handed over.
    arrivals: list = field(default_factory=list)

    @property
    def generator(self):
        """The async generator run_async returned; None once it was garbage-collected."""
        ref = self._generator
        return ref() if isinstance(ref, weakref.ref) else ref

    @property
    def streamed(self) -> bool:
        return self.run_config.streaming_mode == StreamingMode.SSE


def _text(message) -> str:
    parts = getattr(message, "parts", None) or []
    return "".join(p.text for p in parts if getattr(p, "text", None))


async def _timed(generator, run: RunCall, called_at: float):
    """The same events, each noted with the time it is handed to the caller."""
    async with contextlib.aclosing(generator):
        async for event in generator:
            run.arrivals.append((time.perf_counter() - called_at, event))
            yield event


@contextlib.contextmanager
def runs_observed(hold: bool = False, timed: bool = False) -> Iterator[list[RunCall]]:
    """Record every ``Runner.run_async`` call made in the block, by any runner, on any thread.

    ``hold=True`` keeps a reference to each generator, as a web framework or a list of open
    streams would: then only an explicit close (``contextlib.aclosing``) ends a stream early, and
    the caller must ``aclose()`` them when done.

    ``timed=True`` hands the caller a thin wrapper that notes when each event was handed over
    (``RunCall.arrivals``): the truth a learner's own timing of the same run is compared with.
    """
    from google.adk.runners import Runner

    calls: list[RunCall] = []
    original = Runner.__dict__["run_async"]

    @functools.wraps(original)
    def recording(self, *args, **kwargs):
        called_at = time.perf_counter()
        generator = original(self, *args, **kwargs)
        finished = sum(run.generator is None or run.generator.ag_frame is None for run in calls)
        run = RunCall(self, kwargs.get("user_id"), kwargs.get("session_id"),
                      _text(kwargs.get("new_message")), kwargs.get("run_config") or RunConfig(),
                      kwargs.get("abort_signal"), None, finished)
        calls.append(run)
        if timed:
            generator = _timed(generator, run, called_at)
        run._generator = generator if hold else weakref.ref(generator)
        return generator

    Runner.run_async = recording
    try:
        yield calls
    finally:
        Runner.run_async = original


def describe_mode(config: RunConfig) -> str:
    mode = config.streaming_mode
    return "no streaming_mode (the default, StreamingMode.NONE)" if mode == StreamingMode.NONE \
        else f"streaming_mode={mode}"


def not_streamed(calls: list[RunCall], call: str = "runner.run_async") -> tuple[str, str] | None:
    """(what, hint) if one of the learner's runs was made without StreamingMode.SSE; else None."""
    for run in calls:
        if not run.streamed:
            return (f"Your code ran the turn with {describe_mode(run.run_config)}: the model sent the "
                    "whole answer in one response, so nothing was streamed.",
                    f"Pass run_config=RunConfig(streaming_mode=StreamingMode.SSE) to {call}(...).")
    return None
