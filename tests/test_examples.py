"""examples/: standalone scripts a reader copies into a project with pip packages only.

Each script is copied alone into an empty folder outside the repository and run there with
``python <name>.py`` (the workshop and the reference server blocked from import), pointed at the
emulator as at any Gemini-compatible endpoint (GOOGLE_GEMINI_BASE_URL + GOOGLE_API_KEY). The
tests judge what each one does: frames, status codes, what it prints.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from httpx_sse import connect_sse

from workshop.exercises import BEGIN, END
from workshop.snippets import strip_markers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(path.name for path in EXAMPLES.glob("*.py"))
# Run first in the child: importing anything of this repository then fails.
BLOCK_REPO = "import sys; sys.modules['workshop'] = sys.modules['reference_server'] = None\n"
ALICE = {"Authorization": "Bearer tok-alice"}
LESSON_05 = ROOT / "solutions" / "05_fastapi_sse_endpoint.ipynb"
FILE_TAG = "examples/minimal_sse_endpoint.py"  # the tag of lesson 05's cells that are the file


def test_the_three_examples_exist():
    assert {"minimal_sse_endpoint.py", "typewriter.py", "sse_client.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_example_says_what_it_is_how_to_run_it_and_what_it_needs(name):
    tree = ast.parse((EXAMPLES / name).read_text())
    doc = ast.get_docstring(tree)
    assert doc, f"{name} starts with no docstring"
    assert "pip install" in doc, f"{name}: its docstring names no pip packages"
    assert f"python {name}" in doc, f"{name}: its docstring does not say how to run it"
    repo_imports = [
        f"{name}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for module in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        if module.split(".")[0] in ("workshop", "reference_server", "tests", "examples")
    ]
    assert repo_imports == [], "examples import pip packages only"


# -- lesson 05 builds minimal_sse_endpoint.py ---------------------------------------------------
def lesson_cells() -> str:
    """Lesson 05's cells tagged as the file, in order, solution markers removed, two blank lines
    between cells."""
    cells = [cell for cell in nbformat.read(LESSON_05, as_version=4).cells
             if cell.cell_type == "code" and FILE_TAG in cell.metadata.get("tags", [])]
    return "\n\n\n".join(
        "\n".join(line for line in cell.source.splitlines()
                  if not line.lstrip().startswith((BEGIN, END))).strip("\n")
        for cell in cells)


def file_code() -> str:
    """The file without its module docstring and its closing ``if __name__ == "__main__":`` block
    (in a notebook ``__name__`` is ``"__main__"`` too: that block would serve forever), and without
    the comment lines that mark what SNIPPETS.md quotes."""
    text = strip_markers((EXAMPLES / "minimal_sse_endpoint.py").read_text())
    tree = ast.parse(text)
    docstring, *_, main = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert isinstance(main, ast.If) and ast.unparse(main.test) == "__name__ == '__main__'", (
        "the file ends with its __main__ block, and nothing else follows the lesson's code")
    lines = text.splitlines()
    return "\n".join(lines[docstring.end_lineno:main.lineno - 1]).strip("\n")


def test_lesson_05_cells_are_the_minimal_endpoint_file():
    cells, code = lesson_cells(), file_code()
    assert '@api.post("/api/sessions/{session_id}/messages"' in cells  # the route included
    diff = "\n".join(difflib.unified_diff(code.splitlines(), cells.splitlines(),
                                          "examples/minimal_sse_endpoint.py", "lesson 05's cells",
                                          lineterm=""))
    assert cells == code, f"change the file and lesson 05's cells together:\n{diff}"


def test_only_lesson_05_carries_the_file_tag():
    carriers = [path.name for path in sorted((ROOT / "solutions").glob("*.ipynb"))
                if any(FILE_TAG in cell.metadata.get("tags", [])
                       for cell in nbformat.read(path, as_version=4).cells)]
    assert carriers == [LESSON_05.name]


def copy_alone(name: str, folder: Path) -> Path:
    """The script copied into an empty folder outside the repository, as a reader copies it."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(EXAMPLES / name, folder / name))


def command(script: Path, *args: str) -> list[str]:
    """``python <script> args...`` with the repository's packages blocked."""
    run = f"sys.argv = [{str(script)!r}, *{list(args)!r}]; import runpy; runpy.run_path(sys.argv[0], run_name='__main__')"
    return [sys.executable, "-c", BLOCK_REPO + run]


def child_env(emulator_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GEMINI_", "PYTHONPATH"))}
    return {**env, "GOOGLE_GEMINI_BASE_URL": emulator_url, "GOOGLE_API_KEY": "test-key",
            "PYTHONUNBUFFERED": "1", **extra}


def run_script(script: Path, *args: str, emulator_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(script, *args), cwd=script.parent, env=child_env(emulator_url),
                          capture_output=True, text=True, timeout=120)


# -- minimal_sse_endpoint.py ----------------------------------------------------------------
@contextlib.contextmanager
def serving(folder: Path, model_url: str) -> Iterator[str]:
    """``python minimal_sse_endpoint.py`` from a copy in ``folder``, on a free port, its model at
    ``model_url``; yields the server's URL."""
    script = copy_alone("minimal_sse_endpoint.py", folder)
    log = folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command(script), cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                env=child_env(model_url, PORT="0"))
    try:
        deadline = time.monotonic() + 90
        while not (found := re.search(r"Uvicorn running on (http://\S+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield found.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def minimal_endpoint(gemini_emulator_session, tmp_path_factory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("my_project"), gemini_emulator_session.url) as url:
        yield url


def new_session(client: httpx.Client, headers=ALICE) -> str:
    created = client.post("/api/sessions", headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["session_id"]


def read_stream(client: httpx.Client, session_id: str, text: str) -> list:
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                     json={"text": text}) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return list(source.iter_sse())  # ends without an exception: the body closed cleanly


def check_frames(frames: list) -> tuple[list[dict], object]:
    """Every frame has the next id; data frames are ADK events; exactly one terminal frame, last."""
    assert [int(frame.id) for frame in frames] == list(range(1, len(frames) + 1))
    *events, last = frames
    assert all(frame.event == "message" for frame in events)
    assert last.event in ("done", "error")
    return [json.loads(frame.data) for frame in events], last


def test_minimal_endpoint_streams_a_turn_and_ends_with_done(minimal_endpoint, emulator):
    answer = "Streaming works: one frame per event, then done."
    emulator.script({"text": answer})
    with httpx.Client(base_url=minimal_endpoint, timeout=30) as client:
        frames = read_stream(client, new_session(client), "Hello")
    events, last = check_frames(frames)
    assert last.event == "done" and json.loads(last.data) == {"events": len(events)}
    pieces = "".join(p.get("text", "") for e in events if e.get("partial") for p in e["content"]["parts"])
    final = [e for e in events if not e.get("partial")][-1]
    assert pieces == answer and final["content"]["parts"][0]["text"] == answer
    assert len([e for e in events if e.get("partial")]) > 1  # it streamed in pieces
    assert "invocationId" in final and "null" not in frames[-2].data  # camelCase, no nulls


def test_minimal_endpoint_refuses_bad_input_with_a_4xx_json_error(minimal_endpoint, emulator):
    deep = b"[" * 15_000 + b"]" * 15_000  # 30 000 bytes, under the size limit, nested 15 000 deep
    with httpx.Client(base_url=minimal_endpoint, timeout=30) as client:
        session_id = new_session(client)
        messages = f"/api/sessions/{session_id}/messages"
        cases = [
            ("no token", "POST", messages, {}, {"json": {"text": "Hi"}}, 401, "UNAUTHENTICATED"),
            ("unknown token", "POST", messages, {"Authorization": "Bearer tok-eve"},
             {"json": {"text": "Hi"}}, 401, "UNAUTHENTICATED"),
            ("another user's session", "POST", messages, {"Authorization": "Bearer tok-bob"},
             {"json": {"text": "Hi"}}, 404, "SESSION_NOT_FOUND"),
            ("a session that does not exist", "POST", "/api/sessions/nope/messages", ALICE,
             {"json": {"text": "Hi"}}, 404, "SESSION_NOT_FOUND"),
            ("not JSON", "POST", messages, ALICE, {"content": b'{"text": "Hi'}, 400, "INVALID_JSON"),
            ("not UTF-8", "POST", messages, ALICE, {"content": b'{"text": "\xff"}'}, 400, "INVALID_JSON"),
            ("JSON nested 15 000 deep", "POST", messages, ALICE, {"content": deep}, 400, "INVALID_JSON"),
            ("over 32 KiB", "POST", messages, ALICE, {"json": {"text": "a" * 40_000}}, 413,
             "PAYLOAD_TOO_LARGE"),
            ("no text", "POST", messages, ALICE, {"json": {}}, 422, "INVALID_REQUEST"),
            ("blank text", "POST", messages, ALICE, {"json": {"text": "  "}}, 422, "INVALID_REQUEST"),
            ("text is a number", "POST", messages, ALICE, {"json": {"text": 5}}, 422, "INVALID_REQUEST"),
            ("an extra field", "POST", messages, ALICE, {"json": {"text": "Hi", "user_id": "bob"}},
             422, "INVALID_REQUEST"),
            ("an unknown route", "GET", "/nope", ALICE, {}, 404, "NOT_FOUND"),
            ("a wrong method", "GET", messages, ALICE, {}, 405, "METHOD_NOT_ALLOWED"),
        ]
        for what, method, path, headers, kwargs, status, code in cases:
            response = client.request(method, path, headers=headers, **kwargs)
            assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
            assert response.headers["content-type"] == "application/json", what
            body = response.json()
            assert set(body) == {"error"} and body["error"]["code"] == code, f"{what}: {body}"
            assert isinstance(body["error"]["message"], str) and body["error"]["message"], what
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer"), what
        assert "private" not in client.post(messages, headers=ALICE, json={"text": 1, "x": "private"}).text
        assert emulator.requests == []  # nothing reached the model
        # the same connection and session still work
        events, last = check_frames(read_stream(client, session_id, "Count to 3"))
    assert last.event == "done"


@pytest.mark.parametrize(("fault", "code"), [("error-after=2", "MODEL_UNAVAILABLE"),
                                             ("cut-after=3", "STREAM_INTERRUPTED")])
def test_minimal_endpoint_reports_a_failure_after_the_first_byte_in_band(
        minimal_endpoint, emulator, fault, code):
    with httpx.Client(base_url=minimal_endpoint, timeout=30) as client:
        session_id = new_session(client)
        frames = read_stream(client, session_id, f"[fault:{fault}] Count to 10")
        events, last = check_frames(frames)
        assert events and events[0].get("partial")  # the first bytes were an answer
        assert last.event == "error"
        assert json.loads(last.data) == {"error": {"code": code, "message": json.loads(last.data)
                                                   ["error"]["message"]}}
        assert "Traceback" not in last.data and "errorMessage" not in frames[-2].data
        # the session is still usable
        _, after = check_frames(read_stream(client, session_id, "Count to 2"))
    assert after.event == "done"


def test_minimal_endpoint_closes_the_model_request_when_the_client_leaves(minimal_endpoint, emulator):
    emulator.set_pacing(chunk_s=0.02)  # "Count to 300": 6 s of chunks, the client leaves long before
    with httpx.Client(base_url=minimal_endpoint, timeout=30) as client:
        session_id = new_session(client)
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                         json={"text": "Count to 300"}) as source:
            for number, _ in enumerate(source.iter_sse(), start=1):
                if number == 3:
                    break
    deadline = time.monotonic() + 10
    while emulator.requests[-1].outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    record = emulator.requests[-1]
    assert record.outcome == "client_closed"
    assert record.chunks_sent < 150  # stopped, not read to the end by nobody


def test_minimal_endpoint_reports_an_unreachable_model_in_band(tmp_path):
    """ADK reports a connection it could not open as an event with error_code 'ConnectError'."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with serving(tmp_path, dead) as url, httpx.Client(base_url=url, timeout=60) as client:
        events, last = check_frames(read_stream(client, new_session(client), "Hello"))
    assert events[-1]["errorCode"] == "ConnectError"
    assert json.loads(last.data)["error"]["code"] == "MODEL_UNAVAILABLE"


# -- sse_client.py -----------------------------------------------------------------------------
@pytest.fixture
def client_script(tmp_path) -> Path:
    return copy_alone("sse_client.py", tmp_path / "my_project")


def test_sse_client_prints_the_answer_once_as_it_streams(client_script, minimal_endpoint, emulator):
    answer = "Paris is sunny today, 21 degrees."
    emulator.script({"function_call": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"text": answer})
    done = run_script(client_script, "What's the weather in Paris?", "--url", minimal_endpoint,
                      emulator_url=emulator.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == answer + "\n"
    assert "[tool call] get_weather({'city': 'Paris'})" in done.stderr


def test_sse_client_prints_text_before_and_after_a_tool_call_once(client_script, minimal_endpoint,
                                                                emulator):
    """Text, then a call in the same model response: ADK's non-partial event for that response
    holds the text and the call together, and must not print the text again."""
    emulator.script({"text": "Let me look that up.", "function_call": {"name": "get_weather",
                                                                       "args": {"city": "Tokyo"}}},
                    {"text": " Tokyo is cloudy, 18 degrees."})
    done = run_script(client_script, "Tokyo weather?", "--url", minimal_endpoint,
                      emulator_url=emulator.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Let me look that up. Tokyo is cloudy, 18 degrees.\n"
    assert done.stderr.count("[tool call] get_weather") == 1


def test_sse_client_reports_an_error_frame_and_a_refusal(client_script, minimal_endpoint, emulator):
    failed = run_script(client_script, "[fault:error-after=2] Count to 10", "--url",
                        minimal_endpoint, emulator_url=emulator.url)
    assert failed.returncode == 1
    assert "[error] MODEL_UNAVAILABLE:" in failed.stderr
    assert failed.stdout.startswith("1, 2")  # what arrived before the failure, printed as it came
    refused = run_script(client_script, "Hi", "--url", minimal_endpoint, "--token", "tok-eve",
                         emulator_url=emulator.url)
    assert refused.returncode == 1 and "[refused] 401 UNAUTHENTICATED" in refused.stderr
    assert refused.stdout == ""


def test_sse_client_talks_to_the_reference_server_too(client_script, reference_server, emulator):
    answer = "The reference server speaks the same contract."
    emulator.script({"text": answer})
    done = run_script(client_script, "Hello", "--url", reference_server.url, emulator_url=emulator.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == answer + "\n"


def test_sse_client_survives_keep_alives_and_crlf(client_script, emulator):
    """A stream with a ``: ping`` comment and blank line between frames (httpx-sse then yields an
    empty message) and CRLF line ends; text in pieces, then the whole under the same id."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from workshop.servers import serve_in_background

    def frame(number: int, event: dict) -> bytes:
        return f"id: {number}\r\ndata: {json.dumps(event)}\r\n\r\n".encode()

    def text_event(text: str, partial: bool) -> dict:
        return {"id": "e1", "author": "assistant", "partial": partial,
                "content": {"role": "model", "parts": [{"text": text}]}}

    async def body():
        yield frame(1, text_event("Hello, ", True))
        yield b": ping\r\n\r\n"
        yield frame(2, text_event("world.", True))
        yield b": ping\n\n"
        yield frame(3, text_event("Hello, world.", False))
        yield b'event: done\r\ndata: {"events": 3}\r\nid: 4\r\n\r\n'

    async def sessions(request):
        return JSONResponse({"session_id": "s1"}, status_code=201)

    async def messages(request):
        return StreamingResponse(body(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/api/sessions", sessions, methods=["POST"]),
                            Route("/api/sessions/s1/messages", messages, methods=["POST"])])
    with serve_in_background(app) as server:
        done = run_script(client_script, "Hi", "--url", server.url, emulator_url=emulator.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello, world.\n"


def test_sse_client_reports_a_stream_that_breaks_off(client_script, emulator):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from workshop.servers import serve_in_background

    async def body():
        event = {"id": "e1", "partial": True, "content": {"parts": [{"text": "Half an"}]}}
        yield f"id: 1\ndata: {json.dumps(event)}\n\n".encode()

    async def sessions(request):
        return JSONResponse({"session_id": "s1"}, status_code=201)

    async def messages(request):
        return StreamingResponse(body(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/api/sessions", sessions, methods=["POST"]),
                            Route("/api/sessions/s1/messages", messages, methods=["POST"])])
    with serve_in_background(app) as server:
        broken = run_script(client_script, "Hi", "--url", server.url, emulator_url=emulator.url)
    assert broken.returncode == 1
    assert broken.stdout.startswith("Half an") and "[broken]" in broken.stderr


def test_sse_client_resumes_a_dropped_stream_and_prints_each_piece_once(client_script, reference_server,
                                                                      emulator):
    """The reference server behind a proxy that cuts the POST's stream mid-answer (abruptly),
    then the first resume (cleanly, as a proxy timing a response out): the client resumes
    twice with Last-Event-ID and prints the answer once; the model is asked once."""
    from workshop.checks.nb09 import CuttingProxy

    emulator.set_pacing(first_token_s=0, chunk_s=0.01, words_per_chunk=1)
    with httpx.Client(base_url=reference_server.url) as direct:  # not through the proxy: its
        session_id = new_session(direct)                          # first connection is the POST's
    with CuttingProxy((reference_server.host, reference_server.port), [3, (2, "clean")]) as proxy:
        done = run_script(client_script, "Count to 30", "--url", proxy.url, "--session", session_id,
                          emulator_url=emulator.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ", ".join(str(n) for n in range(1, 31)) + ".\n"
    assert done.stderr.count("[resuming]") == 2 and proxy.endings == ["abrupt", "clean"], done.stderr
    assert len(emulator.requests) == 1


def test_sse_client_retries_a_resume_on_503_and_gives_up_on_404(client_script, emulator):
    """A resume answered 503 (a proxy whose worker went away) is tried again; one answered 404
    (nothing left to resume) ends the client at once, with the refusal."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from workshop.servers import serve_in_background

    resumes = []

    async def body():
        event = {"id": "e1", "partial": True, "content": {"parts": [{"text": "Half an"}]}}
        yield f"id: 1\ndata: {json.dumps(event)}\n\n".encode()

    async def messages(request):
        return StreamingResponse(body(), media_type="text/event-stream", headers={"X-Turn-Id": "t1"})

    async def stream(request):
        resumes.append((request.headers.get("last-event-id"), request.query_params.get("turn")))
        if len(resumes) == 1:
            return JSONResponse({"error": {"code": "UNAVAILABLE", "message": "no worker"}}, 503)
        return JSONResponse({"error": {"code": "NO_TURN_TO_RESUME", "message": "gone"}}, 404)

    app = Starlette(routes=[Route("/api/sessions/s1/messages", messages, methods=["POST"]),
                            Route("/api/sessions/s1/stream", stream)])
    with serve_in_background(app) as server:
        broken = run_script(client_script, "Hi", "--url", server.url, "--session", "s1",
                            emulator_url=emulator.url)
    assert broken.returncode == 1, broken.stderr
    assert broken.stdout.startswith("Half an")
    assert resumes == [("1", "t1"), ("1", "t1")]
    assert "[refused] 503 UNAVAILABLE" in broken.stderr and "[refused] 404 NO_TURN_TO_RESUME" in broken.stderr


# -- typewriter.py -----------------------------------------------------------------------------
def test_typewriter_prints_the_answer_once_as_it_arrives(tmp_path, emulator):
    script = copy_alone("typewriter.py", tmp_path / "my_project")
    answer = " ".join(f"word{n}" for n in range(1, 31)) + "."
    emulator.script({"text": answer})
    emulator.set_pacing(chunk_s=0.05)  # about 1.5 s from the first chunk to the last
    proc = subprocess.Popen(command(script, "Say thirty words"), cwd=script.parent,
                            env=child_env(emulator.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, first_output_at = b"", None
    while chunk := os.read(proc.stdout.fileno(), 4096):
        if first_output_at is None and chunk.strip():
            first_output_at = time.time()
        out += chunk
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert out.decode() == answer + "\n"  # the whole answer, each piece once
    request = emulator.requests[-1]
    assert request.chunks_sent >= 3
    # it typed while the model was still writing: the first words came before the last chunk
    assert first_output_at < request.sent_at[-1]


def test_typewriter_exits_with_the_failure(tmp_path, emulator):
    script = copy_alone("typewriter.py", tmp_path / "my_project")
    failed = run_script(script, "[fault:500] Hello", emulator_url=emulator.url)
    assert failed.returncode == 1
    assert "[failed] ServerError: 500" in failed.stderr and failed.stdout.strip() == ""


async def test_typewriter_prints_a_reply_that_arrives_whole(capsys):
    """A reply written by a callback comes as one non-partial event, with no pieces before it."""
    import runpy

    from google.adk.agents import Agent
    from google.adk.models import LlmResponse
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService
    from google.genai import types

    typewrite = runpy.run_path(str(EXAMPLES / "typewriter.py"))["typewrite"]

    def canned(callback_context, llm_request):
        return LlmResponse(content=types.Content(role="model", parts=[types.Part(text="Whole.")]))

    sessions = InMemorySessionService()
    runner = Runner(app_name="t", session_service=sessions,
                    agent=Agent(name="a", model="gemini-3.5-flash", before_model_callback=canned))
    session = await sessions.create_session(app_name="t", user_id="u")
    assert await typewrite(runner, "u", session.id, "Hi") == "Whole."
    assert capsys.readouterr().out == "Whole.\n"
