"""The chat page (reference_server/static/) in headless Chromium, against the real
reference server under uvicorn on loopback and the offline emulator.

Playwright's Python package drives Debian's ``chromium`` (``.ci/run`` installs it; Playwright's
own browser downloads are never used). Without a Chromium these tests skip, except in CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from google.adk.agents import Agent
from google.genai import types

from reference_server import STREAM_ERRORS, Settings, create_app, get_weather
from workshop.servers.background import BackgroundServer
from workshop.servers.seven_streams import CHROMIUM_ARGS, find_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser

TOKEN = "tok-browser"
def _no_browser(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(f"{reason}: install it (apt-get install chromium) to run the browser tests")


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian chromium driven by Playwright; skips (fails in CI) where there is none."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright Python package is not installed (pip install -r requirements.txt)")
    path = find_chromium()
    if path is None:
        _no_browser("no Chromium found (looked for chromium, chromium-browser, $CHROMIUM_PATH)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(gemini_emulator_session) -> Iterator[BackgroundServer]:
    """The reference server, as ``make serve`` builds it, on a free loopback port."""
    # The model's client is made at the first request, inside a test, where the `emulator`
    # fixture has pointed the environment at the (session-wide) emulator.
    with BackgroundServer(create_app(Settings(tokens={TOKEN: "tester"}, database_url="memory://"))) as running:
        yield running


@pytest.fixture
def page(browser, server, emulator):
    """A fresh browser context (empty localStorage) on the chat page, connected."""
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/?token={TOKEN}")
    page.wait_for_selector("#message:not([disabled])", timeout=5000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def send(page, text: str) -> None:
    """Type a message and press Enter, as a user does."""
    page.fill("#message", text)
    page.press("#message", "Enter")


def wait_state(page, state: str, timeout_s: float = 10) -> None:
    page.wait_for_selector(f".turn:last-child[data-state={state}]", timeout=timeout_s * 1000)


def last_answer(page) -> str:
    return page.eval_on_selector_all(".turn:last-child .answer", "nodes => nodes.map(n => n.textContent).join('')")


# Records every change of the last turn's answer text: (ms, length, aggregate arrived).
RECORD_GROWTH = """() => {
  window.samples = [];
  const t0 = performance.now();
  new MutationObserver(() => {
    const answers = [...document.querySelectorAll(".turn:last-child .answer")];
    const length = answers.reduce((n, a) => n + a.textContent.length, 0);
    const complete = answers.length > 0 && answers.every((a) => a.parentElement.dataset.complete === "true");
    window.samples.push([performance.now() - t0, length, complete]);
  }).observe(document.getElementById("transcript"),
             { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def test_token_comes_from_the_url_and_leaves_the_address_bar(page):
    assert "token=" not in page.url
    assert page.evaluate("localStorage.getItem('workshop-token')") == TOKEN
    assert "Connected" in page.inner_text("#connection")


def test_text_grows_in_steps_then_the_aggregate_replaces_it(page, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.04)
    page.evaluate(RECORD_GROWTH)
    page.press("#message", "Shift+Enter")  # a new line, not a submit
    assert page.locator(".turn").count() == 0
    send(page, "Count to 20")
    wait_state(page, "done")

    samples = page.evaluate("window.samples")
    before_final = [length for _, length, complete in samples if not complete and length]
    steps = sorted(set(before_final))
    assert before_final == sorted(before_final), "the text shrank while streaming"
    assert len(steps) >= 5, f"the answer should grow in several steps before the final event: {steps}"
    first_text = next(t for t, length, _ in samples if length)
    complete_at = next(t for t, _, complete in samples if complete)
    assert complete_at - first_text > 200, "the text arrived in one burst, not as a stream"

    expected = ", ".join(str(n) for n in range(1, 21)) + "."
    answer = last_answer(page)
    assert answer.strip() == expected, "the final aggregate must replace the partial text, not add to it"
    assert page.locator(".turn:last-child .message").count() == 1
    assert "Done" in page.inner_text(".turn:last-child .turn-status")


def test_tool_call_shows_name_args_then_result_then_answer(page):
    send(page, "What's the weather in Paris?")
    page.wait_for_selector(".tool-call .tool-name", timeout=10000)
    assert page.inner_text(".tool-call .tool-name") == "get_weather"
    assert '"city": "Paris"' in page.inner_text(".tool-call .tool-args")
    wait_state(page, "done")
    tool = page.locator(".tool-call")
    assert tool.get_attribute("data-status") == "done"
    assert "Sunny" in page.inner_text(".tool-call .tool-result")
    # The call comes first, then the answer that uses its result.
    order = page.eval_on_selector_all(".turn:last-child .bubble.model > *", "nodes => nodes.map(n => n.className)")
    assert order == ["tool-call", "message"]
    assert "Paris" in last_answer(page)


def test_error_event_is_shown_to_the_user(page):
    send(page, "Tell me a story about a river [fault:error-after=2]")
    wait_state(page, "error")
    alert = page.locator(".turn:last-child .error[role=alert]")
    assert alert.count() == 1
    code = alert.locator(".error-code").inner_text()
    assert code in STREAM_ERRORS
    assert alert.locator(".error-message").inner_text() == STREAM_ERRORS[code]
    assert last_answer(page), "the text that arrived before the error stays visible"
    assert "Failed" in page.inner_text(".turn:last-child .turn-status")


def test_an_error_before_the_stream_is_shown_with_its_code(page):
    send(page, "x" * (40 * 1024))  # over the server's body limit: 413 before any byte of stream
    wait_state(page, "error")
    assert page.inner_text(".turn:last-child .error .error-code") == "PAYLOAD_TOO_LARGE"


def test_stop_aborts_the_stream(page, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.1)
    send(page, "Count to 200")
    page.wait_for_function("document.querySelector('.turn:last-child .answer')?.textContent.length > 8")
    page.click("#stop")
    wait_state(page, "stopped", timeout_s=10)  # at once; the margin is for a loaded machine
    stopped_at = last_answer(page)
    time.sleep(0.5)  # five more chunks' worth of time
    assert last_answer(page) == stopped_at, "the text kept growing after Stop"
    assert "Stopped" in page.inner_text(".turn:last-child .turn-status")
    assert page.get_attribute(".turn:last-child .message", "data-stopped") == "true"
    assert page.is_enabled("#send") and page.is_disabled("#stop")
    # Closing the connection made the server close its model request too.
    deadline = time.monotonic() + 10
    while emulator.requests[-1].outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    model_call = emulator.requests[-1]
    assert model_call.outcome == "client_closed" and model_call.chunks_sent < 100


def test_a_dropped_connection_is_resumed_without_loss_or_repeat(page, server, emulator):
    """The network drops twice mid-answer: the page resumes each time with Last-Event-ID, and
    ends with the whole answer, each event applied once, from one model call."""
    emulator.set_pacing(first_token_s=0, chunk_s=0.03)
    calls = len(emulator.requests)
    send(page, "Count to 100")  # 3 s: both drops land mid-answer, even on a loaded machine
    for shown in (8, 40):  # characters of answer on the page before each drop
        page.wait_for_function(
            f"document.querySelector('.turn:last-child .answer')?.textContent.length > {shown}")
        assert server.drop_connections() >= 1
        page.wait_for_function("document.querySelector('.turn:last-child .turn-status')"
                               ".textContent.startsWith('Connection lost')", timeout=3000)
    wait_state(page, "done", timeout_s=15)
    assert last_answer(page).strip() == ", ".join(str(n) for n in range(1, 101)) + "."
    status = page.inner_text(".turn:last-child .turn-status")
    assert "resumed after 2 dropped connections" in status, status
    # Each frame applied once: the page counted as many events as the server sent frames.
    session_id = page.evaluate("document.getElementById('connection').dataset.session")
    replay = httpx.get(f"{server.url}/api/sessions/{session_id}/stream?last_event_id=0",
                       headers={"Authorization": f"Bearer {TOKEN}"})
    done = [block for block in replay.text.split("\n\n") if "event: done" in block]
    sent = json.loads(done[0].split("data: ", 1)[1])["events"]
    assert f"{sent} events" in status, (sent, status)
    assert len(emulator.requests) == calls + 1  # resumed from the buffer, never asked the model again


def test_a_rejected_token_says_so(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/?token=not-a-token")
    page.wait_for_function("document.getElementById('connection').textContent.includes('401')")
    assert page.is_disabled("#message")
    context.close()


def test_a_limit_refusal_says_how_long_to_wait(browser, emulator):
    """A 429 before the stream (quotas.py) reads as its code and a message with the wait."""
    from reference_server.quotas import Quotas

    app = create_app(Settings(tokens={TOKEN: "tester"}, database_url="memory://",
                              quotas=Quotas(turn_rate="1/minute")))
    with BackgroundServer(app) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/?token={TOKEN}")
        page.wait_for_selector("#message:not([disabled])")
        send(page, "Count to 2")
        wait_state(page, "done")
        send(page, "Count to 3")
        wait_state(page, "error")
        assert page.inner_text(".turn:last-child .error .error-code") == "TOO_MANY_TURNS"
        assert re.search(r"Try again in \d+ s\.", page.inner_text(".turn:last-child .error .error-message"))
        assert page.is_enabled("#message")  # the user can write again (and wait)
        context.close()


def test_one_stream_per_user_still_resumes_a_dropped_connection(browser, emulator):
    """WORKSHOP_MAX_STREAMS_PER_USER=1: the resume of a dropped stream needs the slot of the
    stream the server may not have seen drop yet; the page waits for it (429 is retried)."""
    from reference_server.quotas import Quotas

    emulator.set_pacing(first_token_s=0, chunk_s=0.03)
    app = create_app(Settings(tokens={TOKEN: "tester"}, database_url="memory://",
                              quotas=Quotas(max_streams=1)))
    with BackgroundServer(app) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/?token={TOKEN}")
        page.wait_for_selector("#message:not([disabled])")
        send(page, "Count to 30")
        page.wait_for_function("document.querySelector('.turn:last-child .answer')?.textContent.length > 8")
        assert server.drop_connections() >= 1
        wait_state(page, "done", timeout_s=15)
        assert last_answer(page).strip() == ", ".join(str(n) for n in range(1, 31)) + "."
        assert "resumed after 1 dropped connection" in page.inner_text(".turn:last-child .turn-status")
        context.close()


@pytest.fixture
def thinking_page(browser, emulator):
    """The chat page of a server whose agent asks the model for its thoughts."""
    thinking = Agent(
        name="assistant", model="gemini-3.5-flash", instruction="Be brief.", tools=[get_weather],
        generate_content_config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True)),
    )
    app = create_app(Settings(tokens={TOKEN: "tester"}, agent=thinking, database_url="memory://"))
    with BackgroundServer(app) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/?token={TOKEN}")
        page.wait_for_selector("#message:not([disabled])")
        yield page
        context.close()


def test_thoughts_are_shown_apart_from_the_answer(thinking_page):
    page = thinking_page
    send(page, "What is the capital of France?")
    wait_state(page, "done")
    thoughts = page.text_content(".turn:last-child .thinking .thought-text")  # inside a closed <details>
    answer = last_answer(page)
    assert thoughts and answer
    assert thoughts not in answer and "Paris" in answer
    # Readable: Gemini's **step titles** drawn bold, paragraphs apart, no Markdown signs left.
    steps = page.locator(".turn:last-child .thought-text p")
    assert steps.locator("strong").all_text_contents() == ["Reading the request", "Planning the answer"]
    assert steps.count() == 4 and "**" not in thoughts


def test_the_reader_sees_the_model_think(thinking_page, emulator):
    """Before the first answer text: a clock that counts, then the latest step of the thoughts;
    afterwards, how long the model thought."""
    page = thinking_page
    emulator.set_pacing(first_token_s=2.5, chunk_s=0.4)  # windows wide enough to see under load
    send(page, "What is the capital of France?")
    status = ".turn:last-child .turn-status"
    # The clock counts (any whole second from 1: a loaded machine may skip a repaint).
    page.wait_for_function(f"/^Waiting for the model… [1-9][0-9]* s$/.test("
                           f"document.querySelector('{status}').textContent)")
    page.wait_for_selector(f"{status}[data-phase=thinking]", timeout=15000)
    assert re.fullmatch(r"Thinking… \d+ s", page.inner_text(status))
    summary = ".turn:last-child .thinking summary"
    page.wait_for_function(f"document.querySelector('{summary}')?.textContent.includes('Planning the answer')")
    assert re.fullmatch(r"Thinking… \d+ s · Planning the answer", page.inner_text(summary))
    wait_state(page, "done")
    assert re.fullmatch(r"Thought for \d+ s", page.inner_text(summary))
    assert page.get_attribute(status, "data-phase") is None and "Paris" in last_answer(page)


# -- the newest answer in view, reload, a refused token, thoughts, screen readers ----------

# The answer's bottom edge, the transcript's (the scrolling box) and the window's, in CSS px.
EDGES = """() => {
  const answer = document.querySelector('.turn:last-child .bubble.model').getBoundingClientRect();
  const box = document.getElementById('transcript');
  return { answer: answer.bottom, box: box.getBoundingClientRect().bottom, window: innerHeight,
           overflow: box.scrollHeight - box.clientHeight, top: box.scrollTop };
}"""


def answer_longer_than(page, chars: int, timeout_s: float = 10) -> None:
    page.wait_for_function(
        f"(document.querySelector('.turn:last-child .answer')?.textContent.length ?? 0) > {chars}",
        timeout=timeout_s * 1000)


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "mobile"])
def test_the_streaming_answer_stays_in_view_unless_the_reader_scrolls_up(browser, server, emulator,
                                                                          viewport):
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"{server.url}/?token={TOKEN}")
    page.wait_for_selector("#message:not([disabled])")
    for question in ("Tell me about rivers", "What's the weather in Paris?", "Count to 40"):
        send(page, question)
        wait_state(page, "done")
    emulator.set_pacing(chunk_s=0.04)
    send(page, "Count to 150")
    for shown in (10, 120, 300):  # the answer grows over several lines: each time, still in view
        answer_longer_than(page, shown)
        edges = page.evaluate(EDGES)
        assert edges["overflow"] > 0, "the conversation should be taller than the window here"
        assert edges["answer"] <= min(edges["box"], edges["window"]) + 1, (shown, edges)

    # The reader scrolls up to read an earlier answer: the view stays where they put it.
    at_end = page.evaluate(EDGES)["top"]
    page.mouse.move(width / 2, height / 2)
    page.mouse.wheel(0, -150)
    page.wait_for_function(f"document.getElementById('transcript').scrollTop < {at_end - 100}")
    time.sleep(0.2)  # the wheel's scroll has landed
    top = page.evaluate(EDGES)["top"]
    length = len(last_answer(page))
    answer_longer_than(page, length + 30)
    assert abs(page.evaluate(EDGES)["top"] - top) <= 1, "the page pulled the reader back down"
    # Back at the end, it follows again.
    page.mouse.wheel(0, 5000)
    answer_longer_than(page, len(last_answer(page)) + 30)
    page.wait_for_function(f"(({EDGES})()).answer <= Math.min((({EDGES})()).box, innerHeight) + 1",
                           timeout=3000)
    wait_state(page, "done", timeout_s=20)
    context.close()


def turns_on_page(page) -> list[tuple[str, str, str]]:
    """(question, answer, state) of every turn on the page."""
    return [tuple(turn) for turn in page.eval_on_selector_all(".turn", """turns => turns.map(t => [
        t.querySelector('.bubble.user').textContent,
        [...t.querySelectorAll('.answer')].map(a => a.textContent).join(''),
        t.dataset.state])""")]


def test_a_reload_draws_the_conversation_again(page, emulator):
    send(page, "What's the weather in Paris?")
    wait_state(page, "done")
    send(page, "Count to 5")
    wait_state(page, "done")
    before = turns_on_page(page)
    session = page.get_attribute("#connection", "data-session")

    page.reload()
    page.wait_for_selector("#message:not([disabled])")
    page.wait_for_function("document.querySelectorAll('.turn').length === 2")
    assert page.get_attribute("#connection", "data-session") == session
    assert turns_on_page(page) == before
    assert page.locator(".tool-call[data-status=done] .tool-name").inner_text() == "get_weather"
    assert page.inner_text(".turn:last-child .turn-status").startswith("Done")
    # The conversation goes on in the same session; New chat starts an empty one.
    send(page, "Count to 3")
    wait_state(page, "done")
    assert [c["role"] for c in emulator.requests[-1].body["contents"]][-3:] == ["user", "model", "user"]
    assert len(emulator.requests[-1].body["contents"]) >= 5
    page.click("#new-chat")
    page.wait_for_function(f"document.getElementById('connection').dataset.session !== '{session}'")
    assert page.locator(".turn").count() == 0
    page.reload()
    page.wait_for_selector("#message:not([disabled])")
    assert page.locator(".turn").count() == 0


def test_a_reload_mid_answer_resumes_the_running_turn(page, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.04)
    calls = len(emulator.requests)
    send(page, "Count to 200")  # 8 s: the reloaded page finds it still running
    answer_longer_than(page, 20)
    page.reload()
    page.wait_for_selector(".turn[data-state=streaming]", timeout=10000)
    wait_state(page, "done", timeout_s=30)
    assert turns_on_page(page) == [
        ("Count to 200", ", ".join(str(n) for n in range(1, 201)) + ".", "done")]
    assert len(emulator.requests) == calls + 1  # replayed from the buffer, not asked again


def test_a_token_refused_mid_conversation_asks_for_a_token(page, server):
    send(page, "Hello")
    wait_state(page, "done")
    # The token stops working (revoked, rotated): the server answers 401.
    page.route("**/api/**", lambda route: route.continue_(
        headers={**route.request.headers, "authorization": "Bearer revoked"}))
    send(page, "Count to 3")
    wait_state(page, "error")
    assert page.inner_text(".turn:last-child .error-code") == "UNAUTHENTICATED"
    connection = page.locator("#connection")
    assert "401" in connection.inner_text() and "enter a valid token" in connection.inner_text()
    assert "Connected" not in connection.inner_text()
    assert connection.get_attribute("data-ok") == "false"
    assert page.is_disabled("#message") and page.is_disabled("#send")
    assert page.evaluate("document.activeElement.id") == "token"
    assert page.evaluate("localStorage.getItem('workshop-token')") is None
    # A valid token again: the same conversation, where it was.
    page.unroute("**/api/**")
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#message:not([disabled])")
    assert "Connected" in connection.inner_text()
    assert [q for q, _, _ in turns_on_page(page)] == ["Hello"]


def test_markdown_is_drawn_safely(page, emulator):
    emulator.script({
        "thoughts": ["**Checking the list**\n\nThe user wants `two` items."],
        "text": "**Bold** and `code` and *stress*.\n\n- one\n- two\n\n"
                '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>',
    })
    send(page, "Show me markdown")
    wait_state(page, "done")
    answer = page.locator(".turn:last-child .answer")
    assert answer.locator("strong").inner_text() == "Bold"
    assert answer.locator("code").inner_text() == "code"
    assert answer.locator("em").inner_text() == "stress"
    assert answer.locator("li").all_inner_texts() == ["one", "two"]
    assert "<img src=x" in answer.inner_text() and "<script>" in answer.inner_text()
    assert page.locator("#transcript img, #transcript script").count() == 0
    assert page.evaluate("window.pwned") is None
    thoughts = page.locator(".turn:last-child .thought-text")
    assert thoughts.locator("strong").text_content() == "Checking the list"
    assert "**" not in thoughts.text_content()


def test_error_code_and_message_are_read_as_separate_words(page):
    send(page, "Tell me a story about a river [fault:error-after=2]")
    wait_state(page, "error")
    alert = page.locator(".turn:last-child .error[role=alert]")
    code = alert.locator(".error-code").inner_text()
    message = STREAM_ERRORS[code]
    # What assistive technology gets: the alert's nodes in the accessibility tree, read in
    # order (with nothing between two nodes, "CODEThe message" would be one word)...
    snapshot = alert.aria_snapshot().splitlines()
    leaves = [line.split(": ", 1)[1].strip('"') for line in snapshot if re.match(r"\s+- (strong|text): ", line)]
    assert "".join(leaves) == f"{code}: {message}", snapshot
    # ... and the text the live regions (the alert, the transcript's log) announce.
    assert alert.text_content().startswith(f"{code}: {message}")
    assert f"{code}: {message}" in page.locator("#transcript").text_content()
