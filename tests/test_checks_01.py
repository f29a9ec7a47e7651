"""The check cells of notebook 01 pass right answers and explain typical wrong ones."""

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


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda n: RunConfig(max_llm_calls=n), "StreamingMode.NONE"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.NONE, max_llm_calls=n), "the default"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.BIDI, max_llm_calls=n), "run_live"),
    (lambda n: RunConfig(streaming_mode="SSE", max_llm_calls=n), "rejected streaming_mode='SSE'"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.SSE), "the default"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.SSE, max_llm_calls=3), "not 40"),
    (lambda n: RunConfig(streaming_mode=StreamingMode.SSE, max_calls=n), "no field 'max_calls'"),
    (lambda n: {"streaming_mode": StreamingMode.SSE, "max_llm_calls": n}, "not a RunConfig"),
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
    # Paced, so that first text and final answer are measurably apart (SSE: about 0.1 s vs 0.3 s).
    emulator.set_pacing(first_token_s=0.1, chunk_s=0.01, words_per_chunk=1)
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


async def test_right_measure_passes(runner_and_sessions, capsys):
    await nb01.check_measure(make(), *runner_and_sessions, offline=True)
    out = capsys.readouterr().out
    assert "✅ SSE:" in out


async def test_right_measure_passes_online_rules(runner_and_sessions, capsys):
    await nb01.check_measure(make(), *runner_and_sessions, offline=False)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (make(first_text_at="final"), "together with the final event"),
    (make(count="partial"), "Count every event"),
    (make(unit=1000.0), "milliseconds"),
    (make(clock="absolute"), "a clock reading"),
    (make(keys=("n", "first", "final")), "has no 'events'"),
])
async def test_wrong_measures_are_explained(runner_and_sessions, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb01.check_measure(wrong, *runner_and_sessions, offline=True)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_measure_raises_not_implemented(runner_and_sessions):
    async def stub(*args):
        raise NotImplementedError("Exercise 1.2: count the events and time the first text and the final answer")

    with pytest.raises(NotImplementedError):
        await nb01.check_measure(stub, *runner_and_sessions, offline=True)
