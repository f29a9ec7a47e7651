"""SNIPPETS.md quotes only code that CI runs, and a quote cannot drift from its source.

Each snippet in SNIPPETS.md names a region marked in a source file (``# [snippet: name]`` ...
``# [end snippet]``, ``//`` in JavaScript; grammar in ``workshop/snippets.py``). The tests fail
when a quote differs from its region, when a marker is missing, when a region is quoted nowhere,
and when a quote names a file that no test executes. The last two tests here are snippets
themselves: a pytest test of a streaming agent, and stopping a run with ``abort_signal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from pathlib import Path

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import InMemoryRunner
from google.genai import types

from workshop import snippets

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "SNIPPETS.md"

# The files SNIPPETS.md may quote, each with the evidence that a test executes it: (file, text)
# pairs that must all hold. A test file is run by pytest itself (testpaths = ["tests"]).
EXECUTED_BY: dict[str, list[tuple[str, str]]] = {
    "examples/typewriter.py": [("tests/test_examples.py", "copy_alone(\"typewriter.py\"")],
    "examples/minimal_sse_endpoint.py": [("tests/test_examples.py",
                                          "copy_alone(\"minimal_sse_endpoint.py\"")],
    "examples/sse_client.py": [("tests/test_examples.py", "copy_alone(\"sse_client.py\"")],
    # Loaded in headless Chromium: the parser by its own test, api.js by the chat page the
    # browser tests drive (resume with Last-Event-ID included).
    "reference_server/static/sse.js": [("tests/test_sse_js_parser.py", "import(\"/static/sse.js\")")],
    "reference_server/static/api.js": [("reference_server/static/chat.js", "from \"./api.js\""),
                                       ("tests/test_browser_chat.py", "Last-Event-ID")],
    # A pytest plugin every test run loads; most tests use its emulator fixture.
    "workshop/testing.py": [("pyproject.toml", "-p workshop.testing")],
    "deploy/nginx.conf.template": [("workshop/servers/nginx.py", '"nginx.conf.template"'),
                                   ("tests/test_deploy_nginx.py", "nginx.conf.template as it is")],
    "tests/test_snippets.py": [("pyproject.toml", 'testpaths = ["tests"]')],
}


def page_quotes() -> list[snippets.Quote]:
    assert PAGE.is_file(), "SNIPPETS.md is missing"
    return snippets.quotes(PAGE.read_text(encoding="utf-8"))


QUOTES = page_quotes() if PAGE.is_file() else []


def test_the_page_quotes_the_dozen_pieces_people_copy_each_once():
    quotes = page_quotes()
    names = [quote.name for quote in quotes]
    assert len(quotes) >= 12, f"SNIPPETS.md quotes {len(quotes)} snippets"
    assert len(names) == len(set(names)), f"a snippet quoted twice: {names}"
    assert all(quote.lang in ("python", "javascript", "nginx") for quote in quotes)
    # Every fenced block on the page is a checked quote: no unchecked code to copy.
    text = PAGE.read_text(encoding="utf-8")
    assert text.count("\n```") == 2 * len(quotes), "a code block in SNIPPETS.md that no marker backs"


@pytest.mark.parametrize("quote", QUOTES, ids=[quote.name for quote in QUOTES])
def test_each_quote_is_its_source_region(quote):
    assert quote.path in EXECUTED_BY, (
        f"SNIPPETS.md quotes {quote.path}, which no test is known to execute: quote a file CI "
        f"runs ({', '.join(EXECUTED_BY)})")
    source = ROOT / quote.path
    assert source.is_file(), f"{quote.path} does not exist"
    regions = snippets.file_regions(source, ROOT)
    assert quote.name in regions, (
        f"{quote.path} has no '[snippet: {quote.name}]' ... '[end snippet]' region: the marker was "
        "removed or renamed")
    region = regions[quote.name]
    diff = "\n".join(difflib.unified_diff(region.splitlines(), quote.code.splitlines(),
                                          quote.path, "SNIPPETS.md", lineterm=""))
    assert quote.code == region, f"snippet {quote.name!r} drifted from {quote.path}:\n{diff}"


@pytest.mark.parametrize("path", sorted(EXECUTED_BY))
def test_each_quoted_file_is_executed_by_a_test(path):
    for where, evidence in EXECUTED_BY[path]:
        assert evidence in (ROOT / where).read_text(encoding="utf-8"), (
            f"{path}: {where} no longer contains {evidence!r}; make sure a test still runs {path}")


def test_every_marked_region_is_quoted():
    quoted = {(quote.path, quote.name) for quote in page_quotes()}
    seen: dict[str, str] = {}
    for path in EXECUTED_BY:
        for name in snippets.file_regions(ROOT / path, ROOT):
            assert name not in seen, f"snippet {name!r} is marked in {seen[name]} and in {path}"
            seen[name] = path
            assert (path, name) in quoted, f"{path} marks snippet {name!r}; SNIPPETS.md never quotes it"


def test_only_the_listed_files_carry_markers():
    """A marker in a file SNIPPETS.md may not quote would be a region nobody checks."""
    carriers = []
    for folder in ("examples", "reference_server", "workshop", "deploy", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            name = str(path.relative_to(ROOT))
            if "node_modules" in path.parts or not path.is_file():  # installed packages, not ours
                continue
            if (path.suffix in (".py", ".js", ".template") and name != "workshop/snippets.py"
                    and snippets.regions(path.read_text(encoding="utf-8", errors="replace"), name)):
                carriers.append(name)
    assert set(carriers) <= set(EXECUTED_BY), sorted(set(carriers) - set(EXECUTED_BY))


def test_the_nginx_values_the_page_states_are_the_ones_make_serve_prod_fills_in(tmp_path):
    from workshop.servers.nginx import render

    config = render([("127.0.0.1", 9)], prefix=tmp_path, listen="127.0.0.1:8080")
    page = PAGE.read_text(encoding="utf-8")
    for directive in ("proxy_http_version", "proxy_buffering", "proxy_read_timeout"):
        line = next(line.strip() for line in config.splitlines()
                    if line.strip().startswith(directive + " "))
        assert f"`{line}`" in page, f"SNIPPETS.md should state the value make serve-prod uses: {line}"


# -- the marker grammar -------------------------------------------------------------------------
def test_regions_nest_drop_their_markers_and_are_dedented():
    text = ("def f():\n"
            "    # [snippet: outer]\n"
            "    a = 1\n"
            "    // [snippet: inner]\n"
            "    b = 2\n"
            "    # [end snippet]\n"
            "    return a + b\n"
            "    # [end snippet]\n")
    assert snippets.regions(text) == {"outer": "a = 1\nb = 2\nreturn a + b", "inner": "b = 2"}
    assert "[snippet" not in snippets.strip_markers(text) and "return a + b" in snippets.strip_markers(text)


@pytest.mark.parametrize(("text", "problem"), [
    ("# [snippet: a]\nx = 1\n", "has no"),
    ("x = 1\n# [end snippet]\n", "without a start"),
    ("# [snippet: a]\n# [end snippet]\n# [snippet: a]\n# [end snippet]\n", "marked twice"),
])
def test_unbalanced_or_duplicated_markers_are_refused(text, problem):
    with pytest.raises(snippets.MarkerError, match=problem):
        snippets.regions(text, "f.py")


def test_the_page_format_is_read():
    page = ("Intro\n\n<!-- snippet: demo examples/x.py -->\n```python\nprint('hi')\n```\n\nMore.\n")
    assert snippets.quotes(page) == [snippets.Quote("demo", "examples/x.py", "python", "print('hi')")]


# -- two snippets, run here ---------------------------------------------------------------------
# [snippet: pytest-streaming-test]
def text_of(event) -> str:
    parts = event.content.parts if event.content and event.content.parts else []
    return "".join(part.text for part in parts if part.text and not part.thought)


async def test_the_answer_streams_in_pieces_then_arrives_once_whole(emulator):
    answer = "Streaming works: piece by piece, then once whole."
    emulator.script({"text": answer})  # this test's scenario; the emulator's rules play no part
    agent = Agent(name="assistant", model="gemini-3.5-flash", instruction="Answer briefly.")
    runner = InMemoryRunner(agent=agent, app_name="test")
    session = await runner.session_service.create_session(app_name="test", user_id="u")
    message = types.Content(role="user", parts=[types.Part(text="Hello")])
    events = [event async for event in runner.run_async(
        user_id="u", session_id=session.id, new_message=message,
        run_config=RunConfig(streaming_mode=StreamingMode.SSE))]
    partials = [event for event in events if event.partial]
    finals = [event for event in events if event.is_final_response()]
    assert len(partials) > 1, "it streamed"
    assert finals == [events[-1]], "exactly one final response, last"
    # Assert on the text, never on how many chunks carried it: chunk sizes change.
    assert "".join(map(text_of, partials)) == text_of(finals[0]) == answer
    assert len(emulator.requests) == 1
# [end snippet]


async def test_abort_signal_stops_a_run_and_adk_records_it(emulator):
    emulator.set_pacing(chunk_s=0.02)  # "Count to 200": 4 s of chunks; the run stops long before
    runner = InMemoryRunner(agent=Agent(name="assistant", model="gemini-3.5-flash"), app_name="test")
    session = await runner.session_service.create_session(app_name="test", user_id="u")
    message = types.Content(role="user", parts=[types.Part(text="Count to 200")])
    # [snippet: abort-signal]
    stop = asyncio.Event()  # set it from anywhere (a Stop button, a cancel endpoint)
    pieces = []
    run = runner.run_async(user_id="u", session_id=session.id, new_message=message,
                           run_config=RunConfig(streaming_mode=StreamingMode.SSE), abort_signal=stop)
    async with contextlib.aclosing(run) as events:  # closed on any exit, break or exception
        async for event in events:
            if event.partial:
                pieces.append(text_of(event))
            if len(pieces) == 3:
                stop.set()  # ADK ends the run and yields one last event, INVOCATION_ABORTED
    # [end snippet]
    assert 3 <= len(pieces) < 50 and event.error_code == "INVOCATION_ABORTED"
    stored = await runner.session_service.get_session(app_name="test", user_id="u",
                                                      session_id=session.id)
    assert [e.error_code for e in stored.events] == [None, "INVOCATION_ABORTED"]  # question, stop
