"""Checks for 01_runconfig_and_streaming_modes."""

from __future__ import annotations

import math

import pydantic
from google.adk.agents.run_config import RunConfig, StreamingMode

from ._report import fail, learner_output, passed
from ._runs import describe_mode, runs_observed

LIMITS = (3, 40)  # two values, so a hard-coded limit cannot pass
# Long enough to arrive in several chunks whatever their size (a word, or 100 characters).
PROMPT = "Count to 60"
KEYS = ("events", "time_to_first_text", "time_to_final")


# -- Exercise 1.1 ---------------------------------------------------------------------------
def diagnose_run_config(config, limit: int) -> tuple[str, str] | None:
    """What is wrong with make_run_config(limit)'s result, as (what, hint); None if right."""
    if not isinstance(config, RunConfig):
        return (f"make_run_config returned {type(config).__name__}, not a RunConfig.",
                "Return RunConfig(streaming_mode=..., max_llm_calls=...), imported from "
                "google.adk.agents.run_config.")
    mode = config.streaming_mode
    if mode == StreamingMode.NONE:
        return ("streaming_mode is StreamingMode.NONE (the default): run_async would make one "
                ":generateContent call and yield the whole answer as one event.",
                "Pass streaming_mode=StreamingMode.SSE.")
    if mode == StreamingMode.BIDI:
        return ("streaming_mode is StreamingMode.BIDI: with run_async that behaves exactly like NONE "
                "(one :generateContent call); bidirectional streaming is run_live with a Live model.",
                "Pass streaming_mode=StreamingMode.SSE.")
    if mode != StreamingMode.SSE:
        return (f"streaming_mode is {mode!r}, not StreamingMode.SSE.", "Pass streaming_mode=StreamingMode.SSE.")
    if config.max_llm_calls != limit:
        default = RunConfig.model_fields["max_llm_calls"].get_default(call_default_factory=True)
        if config.max_llm_calls == default:
            return (f"max_llm_calls is {config.max_llm_calls}, the default, but make_run_config({limit}) "
                    f"was asked for {limit}.",
                    "Pass max_llm_calls=max_llm_calls to RunConfig.")
        return (f"make_run_config({limit}) gave max_llm_calls={config.max_llm_calls}, not {limit}.",
                "Use the function's argument, not a fixed number: max_llm_calls=max_llm_calls.")
    return None


def check_make_run_config(make_run_config) -> None:
    """Call the learner's make_run_config with two limits; explain the first thing that is wrong."""
    configs = []
    for limit in LIMITS:
        try:
            with learner_output():
                config = make_run_config(limit)
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            if where == "streaming_mode" and str(error.get("input", "")).lower() in ("sse", "bidi"):
                fail(f"RunConfig rejected streaming_mode={error['input']!r}: {error['msg']}.",
                     "The enum's values are lower case: use StreamingMode.SSE (or the string 'sse').")
            if error["type"] == "extra_forbidden":
                fail(f"RunConfig has no field {where!r} (it forbids unknown keys).",
                     "The fields are streaming_mode and max_llm_calls; see RunConfig.model_fields.")
            fail(f"RunConfig rejected your arguments: {where}: {error['msg']}.",
                 "streaming_mode=StreamingMode.SSE, max_llm_calls=<the argument, an int>.")
        problem = diagnose_run_config(config, limit)
        if problem:
            fail(*problem)
        configs.append(config)
    first = configs[0]
    if first.max_llm_calls != LIMITS[0]:
        fail(f"make_run_config({LIMITS[1]}) changed the RunConfig that make_run_config({LIMITS[0]}) "
             f"returned: its max_llm_calls is now {first.max_llm_calls}. Both calls returned one "
             "shared object.",
             "Build a new RunConfig in each call (or copy one: base.model_copy(update={...})); "
             "changing a shared one changes the budget of every run that uses it.")
    passed(f"SSE streaming with the limit you asked for ({', '.join(map(str, LIMITS))} LLM calls per run).")


# -- Exercise 1.2 ---------------------------------------------------------------------------
def has_text(event) -> bool:
    """True if the event carries answer text (thought parts are not the answer)."""
    parts = event.content.parts if event.content and event.content.parts else []
    return any(p.text and not p.thought for p in parts)


def observed_measure(arrivals: list) -> dict:
    """What the learner's function should report, from the events the check saw it receive:
    (seconds since its run_async call, event), noted as each event was handed over."""
    first = next((t for t, e in arrivals if has_text(e)), None)
    final = next((t for t, e in arrivals if e.is_final_response()), None)
    return {"events": len(arrivals), "time_to_first_text": first, "time_to_final": final}


def _close(value: float, truth: float) -> bool:
    """The learner's clock starts just before run_async and stops just after the event arrives,
    in the same steps of the event loop as the check's: only a wrong start or stop is far off
    (20 ms covers a thread switch in between; one chunk interval is 30 ms or more)."""
    return abs(value - truth) <= max(0.02, 0.1 * truth)


def diagnose_measure(got, truth: dict, mode: StreamingMode) -> tuple[str, str] | None:
    """Compare the learner's measurement of one run with what that run handed it; (what, hint) or None.

    ``truth``: the events of the learner's own run and the times they were handed to it. Judged
    against the same run, so a slow or loaded machine stretches both alike.
    """
    name = "SSE" if mode == StreamingMode.SSE else "NONE"
    if not isinstance(got, dict):
        return (f"measure returned {type(got).__name__}, not a dict.",
                "Return {'events': ..., 'time_to_first_text': ..., 'time_to_final': ...}.")
    missing = [k for k in KEYS if k not in got]
    if missing:
        return (f"The dict measure returned has no {', '.join(map(repr, missing))} "
                f"(it has {sorted(got)}).",
                "Use exactly the keys 'events', 'time_to_first_text' and 'time_to_final'.")
    events, first, final = (got[k] for k in KEYS)
    true_events, true_first, true_final = (truth[k] for k in KEYS)
    if not isinstance(events, int) or isinstance(events, bool):
        return (f"'events' is {events!r}, not an int.", "Count the events: events += 1 for each one.")
    if events == true_events - 1:
        return (f"In {name} mode you counted {events} events; the run yielded {true_events}.",
                "Count every event, the final (non-partial) one too: in NONE mode it is the only one.")
    if first is None:
        return (f"In {name} mode time_to_first_text is None: no text found.",
                "Look for text in every event's parts, not only in partial ones (NONE mode has none).")
    if final is None:
        return (f"In {name} mode time_to_final is None.",
                "Record the time of the event for which event.is_final_response() is True.")
    for key, value in (("time_to_first_text", first), ("time_to_final", final)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return (f"{key} is {value!r}, not a number of seconds.",
                    "Subtract a time.perf_counter() taken before the loop from one taken at the event.")
        if value > 1e6:
            return (f"{key} is {value:.0f}: a clock reading, not the time since the start.",
                    "Take start = time.perf_counter() before the loop and record perf_counter() - start.")
        if value > 30 * max(truth[key], 0.1) and value > 10:
            return (f"{key} is {value:.0f}, but the run took {true_final:.2f} s: milliseconds?",
                    "Report seconds, as time.perf_counter() differences are.")
        if value < 0:
            return (f"{key} is negative ({value:.3f}).", "Compute perf_counter() at the event minus start.")
    if true_final > 0.05 and final < 0.25 * true_final:
        return (f"In {name} mode your time_to_final is {final:.3f} s, but the final event came "
                f"{true_final:.2f} s after run_async was called: the clock was restarted during the loop.",
                "Take start = time.perf_counter() once, before calling runner.run_async, "
                "not inside the async for loop.")
    if first > final + 1e-3:
        return (f"In {name} mode time_to_first_text ({first:.3f} s) is after time_to_final ({final:.3f} s).",
                "The first text arrives at the latest with the final event: record it only once, "
                "at the first event that has text.")
    if mode == StreamingMode.SSE and not _close(first, true_first) and _close(first, true_final):
        return (f"In SSE mode your first text came at {first:.2f} s, together with the final event "
                f"({final:.2f} s); the first partial text arrived at {true_first:.2f} s.",
                "Record the time of the FIRST event that has text (a partial one), once; "
                "do not overwrite it later, and do not wait for is_final_response().")
    if events != true_events:
        return (f"In {name} mode you counted {events} events; the run yielded {true_events}.",
                "Count every event the runner yields, once, partial or not.")
    for key, value in (("time_to_first_text", first), ("time_to_final", final)):
        if not _close(value, truth[key]):
            return (f"In {name} mode your {key} is {value:.2f} s; that event reached your loop "
                    f"{truth[key]:.2f} s after run_async was called.",
                    "Start the clock right before runner.run_async and stop it when the event arrives.")
    return None


async def check_measure(measure, runner, session_service, *, user_id: str = "learner") -> None:
    """Run the learner's measure in both modes on fresh sessions; compare what it reports with
    what its own run handed it, and when."""
    results = {}
    for mode in (StreamingMode.SSE, StreamingMode.NONE):
        run_config = RunConfig(streaming_mode=mode)
        mine = await session_service.create_session(app_name=runner.app_name, user_id=user_id)
        with runs_observed(timed=True) as runs, learner_output():
            got = await measure(runner, user_id, mine.id, PROMPT, run_config)
        if not runs:
            fail("measure never called runner.run_async.",
                 "Run the turn with `async for event in runner.run_async(..., run_config=run_config)`.")
        used = runs[0].run_config.streaming_mode
        if used != mode:
            fail(f"The check asked measure for a run with streaming_mode={mode}; your code ran it with "
                 f"{describe_mode(runs[0].run_config)}: the run_config argument did not reach "
                 "runner.run_async.",
                 "Pass it on: runner.run_async(..., run_config=run_config).")
        problem = diagnose_measure(got, observed_measure(runs[0].arrivals), mode)
        if problem:
            fail(*problem)
        results[mode] = got
    sse, none = results[StreamingMode.SSE], results[StreamingMode.NONE]
    passed(f"SSE: {sse['events']} events, first text after {sse['time_to_first_text']:.2f} s of "
           f"{sse['time_to_final']:.2f} s; NONE: {none['events']} event. Both measured right.")
