"""The check cells of notebook 03 pass right answers and explain typical wrong ones."""

import asyncio
import contextlib
import dataclasses
import time

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from workshop.checks import CheckFailed, nb03

SSE = RunConfig(streaming_mode=StreamingMode.SSE)
USER = "learner"


@pytest.fixture
def runner(emulator):
    # Timing matters here: concurrency shows only when the model takes time, and an early close
    # only while the stream is still being sent. A 0.2 s first token keeps the concurrency ratio
    # about the model's wait rather than CPU contention on a loaded 2-core CI machine.
    emulator.set_pacing(first_token_s=0.2, chunk_s=0.01)
    return Runner(app_name="workshop", agent=Agent(name="a", model="gemini-3.5-flash"),
                  session_service=InMemorySessionService())


def message(text):
    return types.Content(role="user", parts=[types.Part(text=text)])


async def ask(runner, session_id, text, both=False):
    """Stream one turn; the final text (and, with both=True, the partial text before it)."""
    pieces, final = [], ""
    async for event in runner.run_async(user_id=USER, session_id=session_id, new_message=message(text),
                                        run_config=SSE):
        if event.partial and event.content and event.content.parts:
            pieces += [p.text for p in event.content.parts if p.text and not p.thought]
        if event.is_final_response() and event.content and event.content.parts:
            final = "".join(p.text for p in event.content.parts if p.text and not p.thought)
    return ("".join(pieces) if both else "") + final


async def new_session(runner):
    return (await runner.session_service.create_session(app_name=runner.app_name, user_id=USER)).id


# -- Exercise 3.1 ------------------------------------------------------------------------------

async def run_many_gather(runner, prompts):
    async def one(text):
        return await ask(runner, await new_session(runner), text)

    return list(await asyncio.gather(*(one(p) for p in prompts)))


async def run_many_task_group(runner, prompts):
    async def one(text):
        return await ask(runner, await new_session(runner), text)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(p)) for p in prompts]
    return [t.result() for t in tasks]


async def run_many_sequential(runner, prompts):
    return [await ask(runner, await new_session(runner), p) for p in prompts]


async def run_many_streams_first(runner, prompts):
    """Creates every generator first, then reads them one by one: the model calls are sequential."""
    streams = [runner.run_async(user_id=USER, session_id=await new_session(runner), new_message=message(p),
                                run_config=SSE) for p in prompts]
    answers = []
    for stream in streams:
        async for event in stream:
            if event.is_final_response():
                answers.append(event.content.parts[0].text)
    return answers


async def run_many_as_completed(runner, prompts):
    async def one(text):
        return await ask(runner, await new_session(runner), text)

    return [await c for c in asyncio.as_completed([one(p) for p in prompts])]


async def run_many_tasks(runner, prompts):
    async def one(text):
        return await ask(runner, await new_session(runner), text)

    tasks = [asyncio.create_task(one(p)) for p in prompts]
    await asyncio.gather(*tasks)
    return tasks


async def run_many_without_sse(runner, prompts):
    async def one(text):
        answer = ""
        async for event in runner.run_async(user_id=USER, session_id=await new_session(runner),
                                            new_message=message(text)):
            if event.is_final_response():
                answer = event.content.parts[0].text
        return answer

    return list(await asyncio.gather(*(one(p) for p in prompts)))


async def run_many_one_session(runner, prompts):
    session_id = await new_session(runner)  # created once, outside the coroutines
    return list(await asyncio.gather(*(ask(runner, session_id, p) for p in prompts)))


async def run_many_skips_one(runner, prompts):
    async def one(text):
        return await ask(runner, await new_session(runner), text)

    answers = list(await asyncio.gather(*(one(p) for p in prompts[:-1])))  # off by one
    return [*answers, ""]


async def run_many_twice(runner, prompts):
    async def one(text):
        return await ask(runner, await new_session(runner), text, both=True)

    return list(await asyncio.gather(*(one(p) for p in prompts)))


@pytest.mark.parametrize("right", [run_many_gather, run_many_task_group])
async def test_run_many_right_answers_pass(runner, emulator, capsys, right):
    await nb03.check_run_many(right, runner, emulator)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (run_many_sequential, "one after another"),
    (run_many_streams_first, "each model request started only after the previous one"),
    (run_many_as_completed, "wrong order"),
    (run_many_tasks, "is a Task"),
    (run_many_twice, "twice"),
    (run_many_without_sse, "no streaming_mode"),
    (run_many_one_session, "sent to the same session"),
    (run_many_skips_one, "No run was started for 'Count to 4'"),
])
async def test_run_many_wrong_answers_are_explained(runner, emulator, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb03.check_run_many(wrong, runner, emulator)
    assert "Hint:" in capsys.readouterr().out


async def test_run_many_with_a_real_model_compares_keywords(runner, capsys):
    """Without the emulator (real Gemini) the exact words are not compared, the order still is."""
    await nb03.check_run_many(run_many_gather, runner, emulator=None)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="mention"):
        await nb03.check_run_many(run_many_as_completed, runner, emulator=None)
    with pytest.raises(CheckFailed, match="started only after an earlier run had ended"):
        await nb03.check_run_many(run_many_sequential, runner, emulator=None)


# -- Exercise 3.2 ------------------------------------------------------------------------------

def make_first_words(mode="aclosing", extra=0):
    async def first_words(runner, user_id, session_id, text, n):
        pieces = []
        stream = runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                  run_config=SSE)
        context = contextlib.aclosing(stream) if mode == "aclosing" else contextlib.nullcontext(stream)
        async with context as events:
            async for event in events:
                if event.partial and event.content and event.content.parts:
                    pieces += [p.text for p in event.content.parts if p.text and not p.thought]
                if mode != "read_all" and len(pieces) >= n + extra:
                    break
        return "".join(pieces[:n + extra])

    return first_words


def pieces_of(event):
    if event.partial and event.content and event.content.parts:
        return [p.text for p in event.content.parts if p.text and not p.thought]
    return []


async def first_words_abort_signal(runner, user_id, session_id, text, n):
    """Stops with abort_signal (taught in lesson 03): ADK ends the run and stores INVOCATION_ABORTED."""
    abort, pieces = asyncio.Event(), []
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=SSE, abort_signal=abort):
        if not abort.is_set():
            pieces += pieces_of(event)
        if len(pieces) >= n:
            abort.set()
    return "".join(pieces[:n])


async def first_words_cancel_task(runner, user_id, session_id, text, n):
    """Streams in a task and cancels it once it has n pieces."""
    pieces, enough = [], asyncio.Event()

    async def consume():
        async for event in runner.run_async(user_id=user_id, session_id=session_id,
                                            new_message=message(text), run_config=SSE):
            pieces.extend(pieces_of(event))
            if len(pieces) >= n:
                enough.set()

    task = asyncio.create_task(consume())
    await enough.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return "".join(pieces[:n])


def cancel_while_busy(closing):
    """Streams in a task that is busy after each event (writing to a slow client) when cancelled."""
    async def first_words(runner, user_id, session_id, text, n):
        pieces, enough = [], asyncio.Event()

        async def consume():
            stream = runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                      run_config=SSE)
            async with (contextlib.aclosing(stream) if closing else contextlib.nullcontext(stream)) as events:
                async for event in events:
                    pieces.extend(pieces_of(event))
                    if len(pieces) >= n:
                        enough.set()
                    await asyncio.sleep(0.05)  # the cancel lands here, outside the generator

        task = asyncio.create_task(consume())
        await enough.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return "".join(pieces[:n])

    return first_words


async def first_words_aclose_in_finally(runner, user_id, session_id, text, n):
    pieces = []
    stream = runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                              run_config=SSE)
    try:
        async for event in stream:
            pieces += pieces_of(event)
            if len(pieces) >= n:
                return "".join(pieces[:n])
    finally:
        await stream.aclose()
    return "".join(pieces)


@pytest.mark.parametrize("right", [make_first_words(), first_words_abort_signal, first_words_cancel_task,
                                   first_words_aclose_in_finally, cancel_while_busy(closing=True)])
async def test_first_words_right_answers_pass(runner, emulator, capsys, right):
    await nb03.check_first_words(right, runner, emulator)
    out = capsys.readouterr().out
    assert "✅" in out and "closed the stream at once" in out


class SettlesLate:
    """The emulator as a loaded machine can show it: the learner's request still reads "running"
    for ``seconds`` after the learner's function returned (its thread has not yet had its turn to
    see the close). Everything else is the real emulator's."""

    def __init__(self, emulator, seconds):
        self._emulator, self._seconds = emulator, seconds
        self.state = emulator.state
        self.returned_at = None

    @property
    def requests(self):
        records = self._emulator.requests
        if self.returned_at is None or time.monotonic() - self.returned_at >= self._seconds:
            return records
        return [*records[:-1], dataclasses.replace(records[-1], outcome="running")]

    def answer(self, first_words):
        async def timed(*args):
            try:
                return await first_words(*args)
            finally:
                self.returned_at = time.monotonic()

        return timed


async def test_first_words_passes_a_close_the_emulator_sees_late(runner, emulator, capsys):
    """Seen 1.5 s late (the check used to give up after 1 s and blame the learner): the check waits
    for the request to settle, and a request found closed late still counts as closed."""
    late = SettlesLate(emulator, 1.5)
    await nb03.check_first_words(late.answer(make_first_words()), runner, late)
    out = capsys.readouterr().out
    assert "✅" in out and "'client_closed'" in out


async def test_first_words_fails_a_request_that_streams_on_after_the_close(emulator):
    """What the wait must not excuse: a request that kept sending chunks after the close."""
    record = type("Record", (), {"number": 1, "outcome": "completed", "sent_at": [10.0, 11.0, 12.0, 13.0, 14.0]})

    class Emulator:
        requests = [record]

    assert await nb03._settled_outcome(Emulator(), 1, closed_at=9.5, timeout=0) == "running"
    assert await nb03._settled_outcome(Emulator(), 1, closed_at=11.5, timeout=0) == "completed"
    record.outcome = "running"
    assert await nb03._settled_outcome(Emulator(), 1, closed_at=11.5, timeout=0.1) == "running"


async def first_words_without_sse(runner, user_id, session_id, text, n):
    pieces = []
    async with contextlib.aclosing(runner.run_async(user_id=user_id, session_id=session_id,
                                                    new_message=message(text))) as events:
        async for event in events:
            pieces += pieces_of(event)
            if len(pieces) >= n:
                break
    return "".join(pieces[:n])


async def first_words_joined_with_spaces(runner, user_id, session_id, text, n):
    pieces = []
    async with contextlib.aclosing(runner.run_async(user_id=user_id, session_id=session_id,
                                                    new_message=message(text), run_config=SSE)) as events:
        async for event in events:
            pieces += pieces_of(event)
            if len(pieces) >= n:
                break
    return " ".join(piece.strip() for piece in pieces[:n])


@pytest.mark.parametrize(("wrong", "message"), [
    (make_first_words(mode="break"), "still open"),
    (make_first_words(mode="read_all"), "not stopped early"),
    (cancel_while_busy(closing=False), "still open"),
    (make_first_words(extra=1), "6 pieces, not 5"),
    (first_words_without_sse, "no streaming_mode"),
    (first_words_joined_with_spaces, "expected"),
])
async def test_first_words_wrong_answers_are_explained(runner, emulator, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb03.check_first_words(wrong, runner, emulator)
    assert "Hint:" in capsys.readouterr().out


async def test_first_words_with_a_real_model_still_checks_the_close(runner, capsys):
    await nb03.check_first_words(make_first_words(), runner, emulator=None)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="still open"):
        await nb03.check_first_words(make_first_words(mode="break"), runner, emulator=None)


def test_diagnose_first_words_reports_an_emulator_outcome():
    what, _ = nb03.diagnose_first_words("a b ", ["a ", "b ", "c "], 2, closed=True, stored_answer=False,
                                        outcome="running")
    assert "still streaming" in what
    assert nb03.diagnose_first_words("a b ", ["a ", "b ", "c "], 2, closed=True, stored_answer=False,
                                     outcome="completed") is None, "its last chunks were already sent"


# -- Unfinished exercises ----------------------------------------------------------------------

async def test_unfinished_exercises_raise_not_implemented(runner, emulator):
    async def stub(*args):
        raise NotImplementedError("Exercise 3.1: stream each prompt in its own session, concurrently")

    with pytest.raises(NotImplementedError):
        await nb03.check_run_many(stub, runner, emulator)
    with pytest.raises(NotImplementedError):
        await nb03.check_first_words(stub, runner, emulator)
