"""The check cells of notebook 02 pass right answers and explain typical wrong ones."""

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.genai import types

from workshop.checks import CheckFailed, nb02

SSE = RunConfig(streaming_mode=StreamingMode.SSE)


def parts_of(event):
    return event.content.parts if event.content and event.content.parts else []


# ---------------------------------------------------------------- Exercise 2.1: typewriter

def right_typewriter(events):
    answer, streamed = [], False
    for event in events:
        if event.partial:
            streamed = True
        elif streamed:
            streamed = False
            continue
        for part in parts_of(event):
            if part.text and not part.thought:
                print(part.text, end="", flush=True)
                answer.append(part.text)
    print()
    return "".join(answer)


def by_event_id(events):
    """Another style: the aggregate carries the id of the partial events it repeats."""
    streamed_ids, answer = set(), ""
    for event in events:
        if event.partial:
            streamed_ids.add(event.id)
        elif event.id in streamed_ids:
            continue
        text = "".join(p.text for p in parts_of(event) if p.text and not p.thought)
        if text:
            print(text, end="", flush=True)
            answer += text
    return answer


def prints_every_event(events):  # the seed's loop
    answer = []
    for event in events:
        for part in parts_of(event):
            if part.text and not part.thought:
                print(part.text, end="")
                answer.append(part.text)
    return "".join(answer)


def includes_thoughts(events):
    answer, streamed = [], False
    for event in events:
        if event.partial:
            streamed = True
        elif streamed:
            streamed = False
            continue
        for part in parts_of(event):
            if part.text:
                print(part.text, end="")
                answer.append(part.text)
    return "".join(answer)


def first_part_only(events):
    answer, streamed = [], False
    for event in events:
        if event.partial:
            streamed = True
        elif streamed:
            streamed = False
            continue
        part = parts_of(event)[0] if parts_of(event) else None
        if part is not None and part.text and not part.thought:
            print(part.text, end="")
            answer.append(part.text)
    return "".join(answer)


def partials_only(events):  # right for SSE, silent without it
    answer = []
    for event in events:
        if event.partial:
            for part in parts_of(event):
                if part.text and not part.thought:
                    print(part.text, end="")
                    answer.append(part.text)
    return "".join(answer)


def returns_final_text(events):  # prints the partials, returns the aggregate's text
    events = list(events)
    partials_only(events)
    return "".join(p.text for e in events if not e.partial for p in parts_of(e) if p.text and not p.thought)


def prints_at_the_end(events):
    events = list(events)
    answer = "".join(p.text for e in events if not e.partial for p in parts_of(e) if p.text and not p.thought)
    print(answer)
    return answer


def returns_nothing(events):
    right_typewriter(events)


@pytest.fixture
async def recorded(emulator):
    return await nb02.record_events()


async def test_recorded_runs_have_the_shapes_the_check_relies_on(recorded):
    sse, no_sse, tool = recorded["sse"], recorded["no_sse"], recorded["tool"]
    assert [e.partial for e in sse][-1] is False and sum(bool(e.partial) for e in sse) > 5
    assert any(p.thought for e in sse for p in parts_of(e))
    assert recorded["no_final_text"][-1].content is None
    assert len(no_sse) == 1 and parts_of(no_sse[0])[0].thought and nb02.texts(no_sse[0])  # [thought, text...]
    assert any(p.function_response for e in tool for p in parts_of(e))
    answer = nb02.persisted_answer(sse)
    assert answer == nb02.streamed_answer(sse) and answer.startswith("1, 2, 3") and answer.endswith("60.")


@pytest.mark.parametrize("right", [right_typewriter, by_event_id])
async def test_right_typewriters_pass(recorded, capsys, right):
    await nb02.check_typewriter(right, recorded)
    assert capsys.readouterr().out.startswith("✅")


async def test_a_failure_shows_what_the_typewriter_printed(recorded, capsys):
    with pytest.raises(CheckFailed, match="came out twice"):
        await nb02.check_typewriter(prints_every_event, recorded)
    out = capsys.readouterr().out
    printed, verdict = out.split("❌")
    assert printed.startswith("Your code printed:") and printed.count("59, 60.") == 2


async def test_check_records_its_own_runs(emulator, capsys):
    await nb02.check_typewriter(right_typewriter)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (prints_every_event, "came out twice"),
    (includes_thoughts, "thought text"),
    (first_part_only, "only one part was read"),
    (partials_only, "Without SSE there are no partial events"),
    (returns_final_text, "final event arrived without content"),
    (prints_at_the_end, "not a typewriter"),
    (returns_nothing, "not a string"),
])
async def test_wrong_typewriters_are_explained(recorded, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb02.check_typewriter(wrong, recorded)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_typewriter_raises_not_implemented(recorded):
    def stub(events):
        raise NotImplementedError("Exercise 2.1: print each text piece once and return the answer")

    with pytest.raises(NotImplementedError):
        await nb02.check_typewriter(stub, recorded)


# ---------------------------------------------------------------- Exercise 2.2: verification

MODEL = "gemini-3.5-flash"


def make_verification(create="await", collect="final", app_name="test", own_service=False, config=SSE,
                      prompt="Hello"):
    async def fixed_verification(session_service, session_id="s1"):
        if own_service:
            from google.adk.sessions import InMemorySessionService
            session_service = InMemorySessionService()
        agent = Agent(name="test", model=MODEL, instruction="Be helpful")
        if create == "await":
            await session_service.create_session(app_name=app_name, user_id="u1", session_id=session_id)
        elif create == "sync":
            session_service.create_session_sync(app_name=app_name, user_id="u1", session_id=session_id)
        elif create == "bare":
            session_service.create_session(app_name=app_name, user_id="u1", session_id=session_id).close()
        runner = Runner(app_name=app_name, agent=agent, session_service=session_service,
                        auto_create_session=create == "auto")
        msg = types.Content(role="user", parts=[types.Part(text=prompt)])
        pieces = []
        for event in runner.run(user_id="u1", session_id=session_id, new_message=msg, run_config=config):
            text = "".join(p.text for p in parts_of(event) if p.text and not p.thought)
            if text and (collect == "both" or (collect == "final") == (not event.partial)):
                pieces.append(text)
        if collect == "last":
            return pieces[-1]
        if collect == "list":
            return pieces
        return "".join(pieces)

    return fixed_verification


@pytest.mark.parametrize("create", ["await", "auto", "sync"])
@pytest.mark.parametrize("collect", ["final", "partial"])
async def test_right_verifications_pass(emulator, capsys, create, collect):
    await nb02.check_fixed_verification(make_verification(create=create, collect=collect))
    out = capsys.readouterr().out
    assert "✅" in out
    assert ("deprecated" in out) == (create == "sync")


@pytest.mark.parametrize(("wrong", "message"), [
    (make_verification(create="bare"), "SessionNotFoundError"),
    (make_verification(collect="both"), "answer twice"),
    (make_verification(collect="last"), "only the last piece"),
    (make_verification(app_name="my-app"), "There is no session"),
    (make_verification(own_service=True), "There is no session"),
    (make_verification(config=RunConfig(response_modalities=["TEXT"])), "no streaming_mode"),
    (make_verification(collect="partial", config=RunConfig()), "no streaming_mode"),
    (make_verification(collect="list"), "not a string"),
    (make_verification(prompt="Hi"), "does not hold the user message 'Hello'"),
])
async def test_wrong_verifications_are_explained(emulator, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb02.check_fixed_verification(wrong)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_verification_raises_not_implemented(emulator):
    async def stub(session_service, session_id="s1"):
        raise NotImplementedError("Exercise 2.2: create the session properly, run, return the answer")

    with pytest.raises(NotImplementedError):
        await nb02.check_fixed_verification(stub)
