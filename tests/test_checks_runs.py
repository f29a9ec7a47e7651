"""runs_observed(): what the checks see of the runs a learner's code starts."""

import gc

from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from workshop.checks._runs import not_streamed, runs_observed


def make_runner():
    return Runner(app_name="t", agent=Agent(name="a", model="gemini-3.5-flash"),
                  session_service=InMemorySessionService(), auto_create_session=True)


def message(text):
    return types.Content(role="user", parts=[types.Part(text=text)])


def test_sync_run_is_seen_with_the_mode_it_used(emulator):
    runner, original = make_runner(), Runner.run_async
    with runs_observed() as runs:
        for _ in runner.run(user_id="u", session_id="s", new_message=message("Hello")):
            pass
    assert Runner.run_async is original, "the class is restored after the block"
    assert [(r.session_id, r.text, r.streamed) for r in runs] == [("s", "Hello", False)]
    what, hint = not_streamed(runs)
    assert "no streaming_mode" in what and "StreamingMode.SSE" in hint


async def test_generators_are_held_weakly_unless_asked(emulator):
    runner, sse = make_runner(), RunConfig(streaming_mode=StreamingMode.SSE)
    with runs_observed() as runs:
        runner.run_async(user_id="u", session_id="s", new_message=message("Hello"), run_config=sse)
    gc.collect()
    assert runs[0].generator is None and runs[0].streamed
    with runs_observed(hold=True) as held:
        runner.run_async(user_id="u", session_id="s", new_message=message("Hello"), run_config=sse)
    assert held[0].generator is not None
    await held[0].generator.aclose()


async def test_timed_runs_note_each_event_and_the_order_of_runs(emulator):
    runner, sse = make_runner(), RunConfig(streaming_mode=StreamingMode.SSE)
    with runs_observed(timed=True) as runs:
        for session in ("a", "b"):
            async for _ in runner.run_async(user_id="u", session_id=session, new_message=message("Count to 3"),
                                            run_config=sse):
                pass
    first, second = runs
    assert len(first.arrivals) > 1 and first.arrivals[-1][1].is_final_response()
    times = [t for t, _ in first.arrivals]
    assert times == sorted(times) and times[0] >= 0
    assert (first.finished_before, second.finished_before) == (0, 1)
