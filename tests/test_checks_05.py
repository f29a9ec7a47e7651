"""The check cells of notebook 05 pass the right answers and explain typical wrong ones."""

import asyncio
import hmac
import itertools
import json
import secrets
from hmac import compare_digest
from typing import Annotated

import pytest
from fastapi import Header, HTTPException
from fastapi.sse import ServerSentEvent
from google.adk.agents import Agent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService

from reference_server import (
    classify_error_code,
    classify_exception,
    error_frame,
    make_current_user,
    sse_frames,
)
from workshop.checks import CheckFailed, nb05


@pytest.fixture
def runner_and_sessions(emulator):
    sessions = InMemorySessionService()
    runner = Runner(app_name="workshop", agent=Agent(name="assistant", model="gemini-3.5-flash"),
                    session_service=sessions)
    return runner, sessions


# -- Exercise 5.1 ----------------------------------------------------------------------------
def frames_variant(*, ids="counter", serialize="raw", done=True, catch=Exception, error_events=True,
                   redact=True, leak_message=False, done_data=True, return_after_error=True):
    """An sse_frames with one typical mistake switched on."""

    async def wrong(events):
        n = 0
        try:
            async for event in events:
                n += 1
                if event.error_code and redact:
                    event = event.model_copy(update={"error_message": None})
                if serialize == "raw":
                    payload = {"raw_data": event.model_dump_json(exclude_none=True, by_alias=True)}
                elif serialize == "data":
                    payload = {"data": event}
                elif serialize == "no_alias":
                    payload = {"raw_data": event.model_dump_json(exclude_none=True)}
                else:
                    payload = {"raw_data": event.model_dump_json(by_alias=True)}
                frame_id = {"counter": str(n), "event": event.id, "none": None, "zero": "0"}[ids]
                yield ServerSentEvent(id=frame_id, **payload)
                if event.error_code and error_events:
                    yield error_frame(classify_error_code(event.error_code), n + 1)
                    if return_after_error:
                        return
        except catch as exc:
            if leak_message:
                yield ServerSentEvent(event="error", id=str(n + 1), raw_data=json.dumps(
                    {"error": {"code": classify_exception(exc), "message": str(exc)}}))
            else:
                yield error_frame(classify_exception(exc), n + 1)
            return
        if done:
            yield ServerSentEvent(event="done", id=str(n + 1),
                                  raw_data=json.dumps({"events": n}) if done_data else None)

    return wrong


def no_try(events):
    async def gen():
        n = 0
        async for event in events:
            n += 1
            yield ServerSentEvent(raw_data=event.model_dump_json(exclude_none=True, by_alias=True), id=str(n))
        yield ServerSentEvent(event="done", raw_data="{}", id=str(n + 1))
    return gen()


async def returns_a_list(events):
    return [ServerSentEvent(raw_data=e.model_dump_json(exclude_none=True, by_alias=True)) async for e in events]


async def yields_strings(events):
    async for event in events:
        yield f"data: {event.model_dump_json(exclude_none=True, by_alias=True)}\n\n"


async def counter_style(events):
    """Another right answer: itertools.count for ids, the error check before the frame, and
    the event sent as a dict through `data=` (FastAPI json-encodes it)."""
    ids = itertools.count(1)
    try:
        async for event in events:
            failed = event.error_code
            body = json.loads(event.model_dump_json(exclude_none=True, by_alias=True, exclude={"error_message"}))
            yield ServerSentEvent(data=body, id=str(next(ids)))
            if failed:
                yield error_frame(classify_error_code(failed), next(ids))
                return
    except Exception as exc:
        yield error_frame(classify_exception(exc), next(ids))
        return
    yield ServerSentEvent(event="done", raw_data="{}", id=str(next(ids)))


@pytest.mark.parametrize("right", [sse_frames, counter_style], ids=["reference", "counter-style"])
async def test_right_sse_frames_pass(runner_and_sessions, capsys, right):
    await nb05.check_sse_frames(right, *runner_and_sessions)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (frames_variant(done=False), "done frame is missing"),
    (frames_variant(ids="event"), "ADK events' own ids"),
    (frames_variant(ids="none"), "have no id"),
    (frames_variant(ids="zero"), "not 1, 2, 3"),
    (frames_variant(serialize="data"), "data=event"),
    (frames_variant(serialize="no_alias"), "snake_case keys"),
    (frames_variant(serialize="nulls"), "null fields"),
    (frames_variant(catch=()), "exception escaped"),
    (no_try, "exception escaped"),
    (frames_variant(catch=BaseException), "Cancellation was swallowed"),
    (frames_variant(leak_message=True), "repeats the exception's message"),
    (frames_variant(error_events=False), "still ended with done"),
    (frames_variant(redact=False), "error_message reached the client"),
    (frames_variant(done_data=False), "no data: line"),
    (frames_variant(return_after_error=False), "followed the error frame"),
    (returns_a_list, "returned a coroutine"),
    (yields_strings, "not a ServerSentEvent"),
], ids=["no-done", "adk-ids", "no-ids", "constant-ids", "data=event", "no-alias", "nulls", "no-catch",
        "no-try", "catches-cancel", "leaks-message", "ignores-error-code", "no-redaction",
        "done-without-data", "no-return-after-error", "coroutine", "strings"])
async def test_wrong_sse_frames_are_explained(runner_and_sessions, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb05.check_sse_frames(wrong, *runner_and_sessions)
    assert "Hint:" in capsys.readouterr().out


async def stub_coroutine(events):  # what the exercise notebook holds: no yield left
    raise NotImplementedError("Exercise 5.1: one frame per event with ids 1, 2, ..., then done, or an error frame")


async def stub_generator(events):
    raise NotImplementedError("Exercise 5.1: one frame per event with ids 1, 2, ..., then done, or an error frame")
    yield


@pytest.mark.parametrize("stub", [stub_coroutine, stub_generator])
async def test_unfinished_sse_frames_raises_not_implemented(runner_and_sessions, stub):
    with pytest.raises(NotImplementedError):
        await nb05.check_sse_frames(stub, *runner_and_sessions)


# -- Exercise 5.2 ----------------------------------------------------------------------------
def user_variant(*, status=401, header_default=True, www=True, case_insensitive=True,
                 prefix=False):
    def make(tokens):
        known = dict(tokens)

        def deny():
            raise HTTPException(status, "no", headers={"WWW-Authenticate": "Bearer"} if www else None)

        async def with_default(authorization: Annotated[str | None, Header()] = None) -> str:
            return check(authorization)

        async def required(authorization: Annotated[str, Header()]) -> str:
            return check(authorization)

        def check(authorization):
            scheme, _, token = (authorization or "").partition(" ")
            if not (scheme.lower() == "bearer" if case_insensitive else scheme == "Bearer"):
                deny()
            if prefix:
                for candidate, user in known.items():
                    if token and candidate.startswith(token):
                        return user
                deny()
            found = None
            for candidate, user in known.items():
                if hmac.compare_digest(token.encode(), candidate.encode()):
                    found = user
            if found is None:
                deny()
            return found

        return with_default if header_default else required

    return make


def dict_lookup_user(tokens):
    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or token not in tokens:
            raise HTTPException(401, "no", headers={"WWW-Authenticate": "Bearer"})
        return tokens[token]

    return current_user


def _same_token(presented: str, known: str) -> bool:
    return hmac.compare_digest(presented.encode(), known.encode())


def helper_style(tokens):
    """Right: compare_digest inside a helper function, a sync dependency, HTTPException."""
    def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        user = None
        for known, name in tokens.items():
            if _same_token(token, known):
                user = name
        if scheme.lower() != "bearer" or user is None:
            raise HTTPException(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
        return user

    return current_user


def imported_name_style(tokens):
    """Right: `from hmac import compare_digest` at the top of the notebook, str.split."""
    known = {token.encode(): user for token, user in tokens.items()}

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        words = (authorization or "").split()
        matches = [user for token, user in known.items()
                   if len(words) == 2 and compare_digest(words[1].encode(), token)]
        if len(words) != 2 or words[0].lower() != "bearer" or not matches:
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
        return matches[0]

    return current_user


def closure_import_style(tokens):
    """Right: secrets.compare_digest, imported inside the factory."""
    from secrets import compare_digest as same

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        found = [user for known, user in tokens.items() if same(token.encode(), known.encode())]
        if scheme.lower() != "bearer" or not found:
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
        return found[0]

    return current_user


@pytest.mark.parametrize("right", [make_current_user, helper_style, imported_name_style,
                                   closure_import_style],
                         ids=["reference", "helper", "imported-name", "closure-import"])
async def test_right_current_user_passes(capsys, right):
    await nb05.check_current_user(right)
    assert "✅" in capsys.readouterr().out
    assert hmac.compare_digest is secrets.compare_digest is compare_digest  # the spy is undone


def todo_comment_user(tokens):
    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        for known, user in tokens.items():
            if scheme.lower() == "bearer" and token == known:  # TODO: compare_digest
                return user
        raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})

    return current_user


def lookup_then_compare_user(tokens):
    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or token not in tokens:  # leaks before compare_digest runs
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(token, next(k for k in tokens if k == token)):
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
        return tokens[token]

    return current_user


def str_compare_user(tokens):
    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        found = [user for known, user in tokens.items() if hmac.compare_digest(token, known)]
        if scheme.lower() != "bearer" or not found:
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
        return found[0]

    return current_user


@pytest.mark.parametrize(("wrong", "message"), [
    (dict_lookup_user, "dict lookup"),
    (user_variant(status=403), "answer is 403"),
    (user_variant(header_default=False), "FastAPI's 422"),
    (user_variant(www=False), "WWW-Authenticate"),
    (user_variant(case_insensitive=False), "case-insensitive"),
    (user_variant(prefix=True), "prefix of a real token"),
    (lambda tokens: "alice", "not a function"),
    (todo_comment_user, "without hmac.compare_digest"),
    (lookup_then_compare_user, "without hmac.compare_digest"),
    (str_compare_user, "non-ASCII characters the dependency crashed"),
], ids=["dict-lookup", "403", "required-header", "no-www-authenticate", "case-sensitive", "prefix",
        "not-callable", "todo-comment", "lookup-then-compare", "str-compare"])
async def test_wrong_current_user_is_explained(capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb05.check_current_user(wrong)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_current_user_raises_not_implemented():
    def stub(tokens):
        raise NotImplementedError("Exercise 5.2: map a bearer token to its user in constant time, 401 otherwise")

    with pytest.raises(NotImplementedError):
        await nb05.check_current_user(stub)


async def test_checks_do_not_leave_tasks_behind(runner_and_sessions):
    before = len(asyncio.all_tasks())
    await nb05.check_sse_frames(sse_frames, *runner_and_sessions)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) <= before


def _cases(test) -> int:
    return next(len(mark.args[1]) for mark in test.pytestmark if mark.name == "parametrize")


def test_each_exercise_holds_five_mistakes_and_two_right_answers():
    """The issue-12 floor: a check is tested with at least five distinct wrong answers and at
    least two right ones written in different styles."""
    for right, wrong in [(test_right_sse_frames_pass, test_wrong_sse_frames_are_explained),
                         (test_right_current_user_passes, test_wrong_current_user_is_explained)]:
        assert _cases(right) >= 2 and _cases(wrong) >= 5, (right.__name__, wrong.__name__)
