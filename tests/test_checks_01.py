"""The check cells of notebook 01 pass right answers and explain typical wrong ones."""

import asyncio
import time

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from workshop.checks import CheckFailed, nb01


# -- Exercise 1.1: make_run_config ------------------------------------------------------------
def right(max_llm_calls):
    return RunConfig(streaming_mode=StreamingMode.SSE, max_llm_calls=max_llm_calls)


def test_right_run_config_passes(capsys):
    nb01.check_make_run_config(right)
    assert "✅" in capsys.readouterr().out


def test_string_sse_is_also_right(capsys):
    nb01.check_make_run_config(lambda n: RunConfig(streaming_mode="sse", max_llm_calls=n))
    assert "✅" in capsys.readouterr().out


BASE = RunConfig(streaming_mode=StreamingMode.SSE)


def copies_a_base_config(max_llm_calls):
    return BASE.model_copy(update={"max_llm_calls": max_llm_calls})


def test_a_copied_base_config_is_also_right(capsys):
    nb01.check_make_run_config(copies_a_base_config)
    assert "✅" in capsys.readouterr().out
    assert BASE.max_llm_calls == 500


SHARED = RunConfig(streaming_mode=StreamingMode.SSE)


def mutates_one_shared_config(max_llm_calls):
    SHARED.max_llm_calls = max_llm_calls
    return SHARED


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda n: RunConfig(max_llm_calls=n), "StreamingMode.NONE"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.NONE, max_llm_calls=n), "the default"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.BIDI, max_llm_calls=n), "run_live"),
    (lambda n: RunConfig(streaming_mode="SSE", max_llm_calls=n), "rejected streaming_mode='SSE'"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.SSE), "the default"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.SSE, max_llm_calls=3), "not 40"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.SSE, max_calls=n), "no field 'max_calls'"),
    (lambda n: {"streaming_mode": StreamingMode.SSE, "max_llm_calls": n}, "not a RunConfig"),
    (mutates_one_shared_config, "one shared object"),
])
def test_wrong_run_configs_are_explained(capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        nb01.check_make_run_config(wrong)
    assert "Hint:" in capsys.readouterr().out


def test_unfinished_make_run_config_raises_not_implemented():
    def stub(max_llm_calls):
        raise NotImplementedError("Exercise 1.1: return a RunConfig for SSE streaming with a call limit")

    with pytest.raises(NotImplementedError):
        nb01.check_make_run_config(stub)


# -- Exercise 1.2: measure --------------------------------------------------------------------
@pytest.fixture
def runner_and_sessions(emulator):
    # Paced, so that first text and final answer are measurably apart in SSE mode, whatever the
    # chunk size (the first text after 0.1 s, the final event some chunk intervals later).
    emulator.set_pacing(first_token_s=0.1, chunk_s=0.03)
    sessions = InMemorySessionService()
    runner = Runner(app_name="workshop", agent=Agent(name="a", model="gemini-3.5-flash"), session_service=sessions)
    return runner, sessions


def make(first_text_at="first", count="all", unit=1.0, clock="relative", keys=nb01.KEYS):
    async def measure(runner, user_id, session_id, text, run_config):
        message = types.Content(role="user", parts=[types.Part(text=text)])
        clock_now = time.perf_counter if clock == "relative" else time.time
        start = clock_now() if clock == "relative" else 0.0
        events, first, final = 0, None, None
        async for event in runner.run_async(
            user_id=user_id, session_id=session_id, new_message=message, run_config=run_config
        ):
            now = (clock_now() - start) * unit
            if count == "all" or event.partial:
                events += 1
            if nb01.has_text(event) and first is None and (count == "all" or event.partial):
                if first_text_at == "first" or event.is_final_response():
                    first = now
            if event.is_final_response():
                final = now
        return dict(zip(keys, (events, first, final), strict=True))

    return measure


async def from_arrivals(runner, user_id, session_id, text, run_config):
    """Another style: note each arrival, then compute; time.monotonic is a clock too."""
    message = types.Content(role="user", parts=[types.Part(text=text)])
    arrivals = []
    start = time.monotonic()
    stream = runner.run_async(user_id=user_id, session_id=session_id, new_message=message, run_config=run_config)
    async for event in stream:
        arrivals.append((time.monotonic() - start, event))
    return {
        "events": len(arrivals),
        "time_to_first_text": next(t for t, e in arrivals if nb01.has_text(e)),
        "time_to_final": next(t for t, e in arrivals if e.is_final_response()),
    }


async def slow_consumer(runner, user_id, session_id, text, run_config):
    """Right, on a machine so busy that every event waits: judged against its own run, it passes."""
    message = types.Content(role="user", parts=[types.Part(text=text)])
    start = time.perf_counter()
    events, first, final = 0, None, None
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message,
                                        run_config=run_config):
        now = time.perf_counter() - start
        events += 1
        first = now if first is None and nb01.has_text(event) else first
        final = now if event.is_final_response() else final
        await asyncio.sleep(0.02)  # the rest of the loop's work, or a loaded machine
    return {"events": events, "time_to_first_text": first, "time_to_final": final}


@pytest.mark.parametrize("right", [make(), from_arrivals, slow_consumer])
async def test_right_measures_pass(runner_and_sessions, capsys, right):
    await nb01.check_measure(right, *runner_and_sessions)
    out = capsys.readouterr().out
    assert "✅ SSE:" in out


async def forgets_run_config(runner, user_id, session_id, text, run_config):
    message = types.Content(role="user", parts=[types.Part(text=text)])
    start = time.perf_counter()
    events, first, final = 0, None, None
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message):
        events += 1
        if first is None and nb01.has_text(event):
            first = time.perf_counter() - start
        if event.is_final_response():
            final = time.perf_counter() - start
    return {"events": events, "time_to_first_text": first, "time_to_final": final}


async def always_streams(runner, user_id, session_id, text, run_config):
    """Ignores the run_config it is given and builds its own."""
    return await make()(runner, user_id, session_id, text, RunConfig(streaming_mode=StreamingMode.SSE))


async def restarts_the_clock(runner, user_id, session_id, text, run_config):
    message = types.Content(role="user", parts=[types.Part(text=text)])
    events, first, final = 0, None, None
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message,
                                        run_config=run_config):
        start = time.perf_counter()
        events += 1
        if first is None and nb01.has_text(event):
            first = time.perf_counter() - start
        if event.is_final_response():
            final = time.perf_counter() - start
    return {"events": events, "time_to_first_text": first, "time_to_final": final}


@pytest.mark.parametrize(("wrong", "message"), [
    (make(first_text_at="final"), "together with the final event"),
    (make(count="partial"), "Count every event"),
    (make(unit=1000.0), "milliseconds"),
    (make(clock="absolute"), "a clock reading"),
    (make(keys=("n", "first", "final")), "has no 'events'"),
    (forgets_run_config, "no streaming_mode"),
    (always_streams, "did not reach runner.run_async"),
    (restarts_the_clock, "clock was restarted"),
])
async def test_wrong_measures_are_explained(runner_and_sessions, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb01.check_measure(wrong, *runner_and_sessions)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_measure_raises_not_implemented(runner_and_sessions):
    async def stub(*args):
        raise NotImplementedError("Exercise 1.2: count the events and time the first text and the final answer")

    with pytest.raises(NotImplementedError):
        await nb01.check_measure(stub, *runner_and_sessions)
