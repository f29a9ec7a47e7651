"""The check cells of notebook 09 pass the solutions and explain typical wrong answers."""

import asyncio
import json
from dataclasses import dataclass

import httpx
import pytest
from google.adk.agents import Agent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from httpx_sse import connect_sse

from workshop.checks import CheckFailed, nb09

TERMINAL = ("done", "error", "cancelled")


# -- Exercise 9.1: a small turn manager's follow (the notebook's class) ----------------------------
@dataclass(frozen=True)
class MiniFrame:
    id: int
    event: str  # "message" (an ADK event), or the end: "done", "error"
    data: str


class MiniTurns:
    """The notebook's class: start and the frame log are given, follow is the exercise."""

    def __init__(self) -> None:
        self.frames: dict[str, list[MiniFrame]] = {}
        self.changed: dict[str, asyncio.Condition] = {}
        self.tasks: dict[str, asyncio.Task] = {}

    def start(self, session_id, events) -> bool:
        task = self.tasks.get(session_id)
        if task is not None and not task.done():
            return False
        self.frames[session_id] = []
        self.changed[session_id] = asyncio.Condition()
        self.tasks[session_id] = asyncio.create_task(self._run(session_id, events))
        return True

    async def _append(self, session_id, event, data) -> None:
        frames = self.frames[session_id]
        async with self.changed[session_id]:
            frames.append(MiniFrame(len(frames) + 1, event, data))
            self.changed[session_id].notify_all()

    async def _run(self, session_id, events) -> None:
        try:
            async for event in events:
                await self._append(session_id, "message", event.model_dump_json(exclude_none=True))
        except Exception as exc:
            await self._append(session_id, "error", json.dumps({"error": type(exc).__name__}))
        else:
            await self._append(session_id, "done", "{}")

    async def follow(self, session_id, after=0):
        frames, changed = self.frames[session_id], self.changed[session_id]
        while True:
            async with changed:
                while len(frames) <= after:
                    await changed.wait()
                new = frames[after:]
            for frame in new:
                yield frame
                after = frame.id
                if frame.event != "message":
                    return


class PollingStyle(MiniTurns):
    """Another right answer: an index into the list, and a short sleep instead of the Condition."""

    async def follow(self, session_id, after=0):
        frames = self.frames[session_id]
        index = after
        while True:
            if index < len(frames):
                frame = frames[index]
                index += 1
                yield frame
                if frame.event in ("done", "error"):
                    break
            else:
                await asyncio.sleep(0.005)


class ReplaysOnly(MiniTurns):
    async def follow(self, session_id, after=0):
        for frame in list(self.frames[session_id][after:]):
            yield frame


class LiveOnly(MiniTurns):
    async def follow(self, session_id, after=0):
        frames, changed = self.frames[session_id], self.changed[session_id]
        seen = len(frames)  # from now on: what was stored is skipped
        while True:
            async with changed:
                while len(frames) <= seen:
                    await changed.wait()
            for frame in frames[seen:]:
                yield frame
                seen = frame.id
                if frame.event != "message":
                    return


class TwiceAtTheSeam(MiniTurns):
    async def follow(self, session_id, after=0):
        frames, changed = self.frames[session_id], self.changed[session_id]
        for frame in list(frames[after:]):  # the replay...
            yield frame
            if frame.event != "message":
                return
        while True:  # ...then live, but from `after` again
            async with changed:
                while len(frames) <= after:
                    await changed.wait()
            for frame in frames[after:]:
                yield frame
                if frame.event != "message":
                    return
            after = len(frames)


class NewestOnly(MiniTurns):
    async def follow(self, session_id, after=0):
        frames, changed = self.frames[session_id], self.changed[session_id]
        for frame in list(frames[after:]):
            yield frame
        seen = len(frames)
        while not frames or frames[-1].event == "message":
            async with changed:
                while len(frames) <= seen:
                    await changed.wait()
                seen = len(frames)
            yield frames[-1]  # two frames stored together: the first is lost


class NeverEnds(MiniTurns):
    async def follow(self, session_id, after=0):
        frames, changed = self.frames[session_id], self.changed[session_id]
        while True:
            async with changed:
                while len(frames) <= after:
                    await changed.wait()
                new = frames[after:]
            for frame in new:
                yield frame
                after = frame.id


class StopsTheTurn(MiniTurns):
    async def follow(self, session_id, after=0):
        try:
            async for frame in MiniTurns.follow(self, session_id, after):
                yield frame
        finally:
            self.tasks[session_id].cancel()  # "clean up" when the client leaves


@pytest.fixture
def mini_runner(emulator):
    return Runner(app_name="workshop", agent=Agent(name="assistant", model="gemini-3.5-flash"),
                  session_service=InMemorySessionService())


@pytest.mark.parametrize("right", [MiniTurns, PollingStyle], ids=["condition", "polling"])
async def test_mini_turns_passes(mini_runner, capsys, right):
    await nb09.check_mini_turns(right, mini_runner)
    out = capsys.readouterr().out
    assert "✅" in out and "a real run_async turn" in out


@pytest.mark.parametrize(("wrong", "message"), [
    (ReplaysOnly, "ended after 0 frame.*no terminal frame"),
    (LiveOnly, "while 3 frames were stored got \\[\\]"),
    (TwiceAtTheSeam, "twice"),
    (NewestOnly, "got 1 of the 3 frames"),
    (NeverEnds, "got ids \\[1, .*had not ended"),  # every id it got, from the first (a blind try was misled by the last three)
    (StopsTheTurn, "the turn stopped"),
])
async def test_mini_turns_explains_wrong_answers(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb09.check_mini_turns(wrong)


async def test_mini_turns_lets_not_implemented_through():
    class Stub(MiniTurns):  # as the learner's notebook has it: no yield, so a coroutine
        async def follow(self, session_id, after=0):
            raise NotImplementedError("Exercise 9.1: replay the stored frames, then follow live")

    with pytest.raises(NotImplementedError):
        await nb09.check_mini_turns(Stub)


# -- Exercise 9.2: a resuming client (the notebook's solution) --------------------------------------
def read_with_resume(base_url, token, session_id, text, max_connections=10):
    auth = {"Authorization": f"Bearer {token}"}
    frames = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for attempt in range(max_connections):
            if attempt == 0:  # send the message
                request = {"method": "POST", "url": f"/api/sessions/{session_id}/messages",
                           "headers": auth, "json": {"text": text}}
            else:  # resume after the last frame seen
                last_id = frames[-1].id if frames else "0"
                request = {"method": "GET", "url": f"/api/sessions/{session_id}/stream",
                           "headers": {**auth, "Last-Event-ID": last_id}}
            try:
                with connect_sse(client, **request) as source:
                    for frame in source.iter_sse():
                        frames.append(frame)
                        if frame.event in TERMINAL:
                            return frames
            except httpx.TransportError:
                pass  # the connection broke: resume
    return frames


def no_resume(base_url, token, session_id, text):
    frames = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        try:
            with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                             headers={"Authorization": f"Bearer {token}"}, json={"text": text}) as source:
                frames.extend(source.iter_sse())
        except httpx.TransportError:
            pass
    return frames


def crashes_on_cut(base_url, token, session_id, text):
    with httpx.Client(base_url=base_url, timeout=30) as client, connect_sse(
            client, "POST", f"/api/sessions/{session_id}/messages",
            headers={"Authorization": f"Bearer {token}"}, json={"text": text}) as source:
        return list(source.iter_sse())


def resume_from_zero(base_url, token, session_id, text):
    auth = {"Authorization": f"Bearer {token}"}
    frames = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        request = {"method": "POST", "url": f"/api/sessions/{session_id}/messages", "json": {"text": text}}
        for _ in range(10):
            try:
                with connect_sse(client, headers=auth, **request) as source:
                    for frame in source.iter_sse():
                        frames.append(frame)
                        if frame.event in TERMINAL:
                            return frames
            except httpx.TransportError:
                pass
            request = {"method": "GET", "url": f"/api/sessions/{session_id}/stream"}  # no Last-Event-ID
    return frames


def posts_again(base_url, token, session_id, text):
    headers = {"Authorization": f"Bearer {token}"}
    frames = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(10):
            try:
                with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=headers,
                                 json={"text": text}) as source:
                    if source.response.status_code != 200:
                        continue
                    for frame in source.iter_sse():
                        frames.append(frame)
                        if frame.event in TERMINAL:
                            return frames
            except httpx.TransportError:
                pass
    return frames


def while_loop_style(base_url, token, session_id, text):
    """Another right answer: a while loop on the last frame, the URL's last_event_id, a fresh
    client per connection."""
    auth = {"Authorization": f"Bearer {token}"}
    frames = []
    while not frames or frames[-1].event not in TERMINAL:
        with httpx.Client(base_url=base_url, headers=auth, timeout=30) as client:
            if frames:
                args = ("GET", f"/api/sessions/{session_id}/stream",
                        {"headers": {"Last-Event-ID": frames[-1].id}})
            else:
                args = ("POST", f"/api/sessions/{session_id}/messages", {"json": {"text": text}})
            try:
                with connect_sse(client, args[0], args[1], **args[2]) as source:
                    frames.extend(source.iter_sse())
            except httpx.RemoteProtocolError:
                continue
    return frames


@pytest.mark.parametrize("right", [read_with_resume, while_loop_style], ids=["solution", "while-loop"])
def test_resuming_client_passes(emulator, capsys, right):
    nb09.check_resuming_client(right, emulator)
    out = capsys.readouterr().out
    assert "✅" in out and "abrupt, clean" in out
    assert len(emulator.requests) == 1


def resumes_only_on_exception(base_url, token, session_id, text):
    """Resumes when httpx raises, but takes a body that just ends for the whole answer."""
    auth = {"Authorization": f"Bearer {token}"}
    frames = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        request = {"method": "POST", "url": f"/api/sessions/{session_id}/messages",
                   "headers": auth, "json": {"text": text}}
        for _ in range(10):
            try:
                with connect_sse(client, **request) as source:
                    frames.extend(source.iter_sse())
                return frames  # the body ended: done, it thinks
            except httpx.TransportError:
                request = {"method": "GET", "url": f"/api/sessions/{session_id}/stream",
                           "headers": {**auth, "Last-Event-ID": frames[-1].id}}
    return frames


def keeps_the_last_connection_only(base_url, token, session_id, text):
    auth = {"Authorization": f"Bearer {token}"}
    frames, last_id = [], None
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(10):
            if last_id is None:
                request = {"method": "POST", "url": f"/api/sessions/{session_id}/messages",
                           "headers": auth, "json": {"text": text}}
            else:
                request = {"method": "GET", "url": f"/api/sessions/{session_id}/stream",
                           "headers": {**auth, "Last-Event-ID": last_id}}
            frames = []  # the frames before the cut are dropped
            try:
                with connect_sse(client, **request) as source:
                    for frame in source.iter_sse():
                        frames.append(frame)
                        last_id = frame.id
            except httpx.TransportError:
                continue
            if frames and frames[-1].event in TERMINAL:
                return frames
    return frames


@pytest.mark.parametrize(("answer", "message"), [
    (no_resume, "not with done/error/cancelled"),
    (crashes_on_cut, "raised RemoteProtocolError"),
    (resume_from_zero, "appear twice"),
    (posts_again, "sent the message again"),
    (resumes_only_on_exception, "ended cleanly"),
    (keeps_the_last_connection_only, "missing or out of order"),
])
def test_resuming_client_explains_wrong_answers(emulator, answer, message):
    with pytest.raises(CheckFailed, match=message):
        nb09.check_resuming_client(answer, emulator)


def test_resuming_client_lets_not_implemented_through(emulator):
    def stub(base_url, token, session_id, text):
        raise NotImplementedError("Exercise 9.2: read the stream, resume after a cut")

    with pytest.raises(NotImplementedError):
        nb09.check_resuming_client(stub, emulator)


# -- Exercise 9.3: what happened to my message? -------------------------------------------------------
def what_happened(status, frames):
    if status == 429 or status >= 500:
        return "retry"
    if status != 200:
        return "client_error"
    last = frames[-1] if frames else None
    if last is None or last.event not in ("done", "error", "cancelled"):
        return "resume"
    if last.event == "error":
        return "error:" + json.loads(last.data)["error"]["code"]
    return last.event


def match_style(status, frames):
    """Another right answer: match on the status, then on the last frame's event."""
    match status:
        case 200:
            pass
        case 429:
            return "retry"
        case _ if 500 <= status < 600:
            return "retry"
        case _:
            return "client_error"
    match frames[-1].event if frames else None:
        case "done" | "cancelled" as ended:
            return ended
        case "error":
            return f"error:{json.loads(frames[-1].data)['error']['code']}"
        case _:
            return "resume"


@pytest.mark.parametrize("right", [what_happened, match_style], ids=["solution", "match"])
def test_what_happened_passes(capsys, right):
    nb09.check_what_happened(right)
    assert "✅" in capsys.readouterr().out


def missing_terminal_is_done(status, frames):
    if status == 429 or status >= 500:
        return "retry"
    if status != 200:
        return "client_error"
    if frames and frames[-1].event == "error":
        return "error:" + json.loads(frames[-1].data)["error"]["code"]
    if frames and frames[-1].event == "cancelled":
        return "cancelled"
    return "done"


def error_without_code(status, frames):
    answer = what_happened(status, frames)
    return "error" if answer.startswith("error:") else answer


def every_4xx_is_retry(status, frames):
    return "retry" if status >= 400 else what_happened(status, frames)


def only_429_and_503_retry(status, frames):  # a proxy's 502/504 taken for the client's fault
    if status in (429, 503):
        return "retry"
    return "client_error" if status != 200 else what_happened(status, frames)


def last_frame_without_guard(status, frames):
    if status != 200:
        return what_happened(status, frames)
    last = frames[-1]  # an empty 200 body has no frames
    return what_happened(status, frames) if last else "resume"


def parses_every_last_frame(status, frames):
    if status != 200 or not frames:
        return what_happened(status, frames)
    data = json.loads(frames[-1].data)  # a ping's data is empty
    if frames[-1].event == "error":
        return "error:" + data["error"]["code"]
    return what_happened(status, frames)


def event_name_as_code(status, frames):
    answer = what_happened(status, frames)
    return "error:" + frames[-1].event if answer.startswith("error:") else answer


@pytest.mark.parametrize(("answer", "message"), [
    (missing_terminal_is_done, "expected 'resume'"),
    (error_without_code, "expected 'error:STREAM_INTERRUPTED'"),
    (every_4xx_is_retry, "expected 'client_error'"),
    (only_429_and_503_retry, "502 from a proxy.*expected 'retry'"),
    (last_frame_without_guard, "empty 200 body.*raised IndexError"),
    (parses_every_last_frame, "keep-alive ping.*raised JSONDecodeError"),
    (event_name_as_code, "expected 'error:STREAM_INTERRUPTED'"),
])
def test_what_happened_explains_wrong_answers(answer, message):
    with pytest.raises(CheckFailed, match=message):
        nb09.check_what_happened(answer)


def test_what_happened_lets_not_implemented_through():
    def stub(status, frames):
        raise NotImplementedError("Exercise 9.3: classify the outcome")

    with pytest.raises(NotImplementedError):
        nb09.check_what_happened(stub)


def _cases(test) -> int:
    return next(len(mark.args[1]) for mark in test.pytestmark if mark.name == "parametrize")


def test_each_exercise_holds_five_mistakes_and_two_right_answers():
    """The issue-12 floor: a check is tested with at least five distinct wrong answers and at
    least two right ones written in different styles."""
    for right, wrong in [(test_mini_turns_passes, test_mini_turns_explains_wrong_answers),
                         (test_resuming_client_passes, test_resuming_client_explains_wrong_answers),
                         (test_what_happened_passes, test_what_happened_explains_wrong_answers)]:
        assert _cases(right) >= 2 and _cases(wrong) >= 5, (right.__name__, wrong.__name__)
