"""The check cells of notebook 09 pass the solutions and explain typical wrong answers."""

import json

import httpx
import pytest
from httpx_sse import connect_sse

from workshop.checks import CheckFailed, nb09

TERMINAL = ("done", "error", "cancelled")


# -- Exercise 9.1: a resuming client (the notebook's solution) --------------------------------------
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


def test_resuming_client_passes(emulator, capsys):
    nb09.check_resuming_client(read_with_resume, emulator)
    assert "✅" in capsys.readouterr().out
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(("answer", "message"), [
    (no_resume, "not with done/error/cancelled"),
    (crashes_on_cut, "raised RemoteProtocolError"),
    (resume_from_zero, "appear twice"),
    (posts_again, "sent the message again"),
])
def test_resuming_client_explains_wrong_answers(emulator, answer, message):
    with pytest.raises(CheckFailed, match=message):
        nb09.check_resuming_client(answer, emulator)


def test_resuming_client_lets_not_implemented_through(emulator):
    def stub(base_url, token, session_id, text):
        raise NotImplementedError("Exercise 9.1: read the stream, resume after a cut")

    with pytest.raises(NotImplementedError):
        nb09.check_resuming_client(stub, emulator)


# -- Exercise 9.2: what happened to my message? -------------------------------------------------------
def what_happened(status, frames):
    if status in (429, 503):
        return "retry"
    if status != 200:
        return "client_error"
    last = frames[-1] if frames else None
    if last is None or last.event not in ("done", "error", "cancelled"):
        return "resume"
    if last.event == "error":
        return "error:" + json.loads(last.data)["error"]["code"]
    return last.event


def test_what_happened_passes(capsys):
    nb09.check_what_happened(what_happened)
    assert "✅" in capsys.readouterr().out


def missing_terminal_is_done(status, frames):
    if status in (429, 503):
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


@pytest.mark.parametrize(("answer", "message"), [
    (missing_terminal_is_done, "expected 'resume'"),
    (error_without_code, "expected 'error:STREAM_INTERRUPTED'"),
    (every_4xx_is_retry, "expected 'client_error'"),
])
def test_what_happened_explains_wrong_answers(answer, message):
    with pytest.raises(CheckFailed, match=message):
        nb09.check_what_happened(answer)


def test_what_happened_lets_not_implemented_through():
    def stub(status, frames):
        raise NotImplementedError("Exercise 9.2: classify the outcome")

    with pytest.raises(NotImplementedError):
        nb09.check_what_happened(stub)
