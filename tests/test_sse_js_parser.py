"""The chat page's SSE parser (static/sse.js), run in headless Chromium, against the byte cases
of httpx-sse's own test suite and the WHATWG standard's examples, fed whole, split at every
byte position (so across a CRLF and inside a UTF-8 character), split at every pair of
positions, and one byte at a time. The expected events come from httpx-sse's decoder (the
Python client of notebook 05), except where httpx-sse departs from the standard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.sse import format_sse_event
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from test_browser_chat import chromium

from reference_server import STATIC_DIR
from reference_server.replay import Frame
from reference_server.turns import PING

ORIGIN = "http://sse-parser.test"  # answered by page.route below, never by a network

EVENT_JSON = json.dumps(
    {"content": {"parts": [{"text": "Grüße, 世界 😀 — naïve café"}], "role": "model"},
     "partial": True, "id": "e-1", "author": "assistant"},
    ensure_ascii=False,
)

# (name, bytes, expected events per the standard or None: "what httpx-sse yields").
CASES = [
    # httpx-sse tests/test_decoders.py (the WHATWG examples and its own cases)
    ("whatwg example 1: multi-line data", b"data: YH00\ndata: +2\ndata: 10\n\n", None),
    ("whatwg example 2: comment, id, empty id", b": test stream\n\ndata: first event\nid: 1\n\n"
     b"data: second event\nid\n\ndata:  third event\n\n", None),
    ("whatwg example 3: empty data, unfinished frame", b"data\n\ndata\ndata\n\ndata:\n", None),
    ("whatwg example 4: optional space", b"data:test\n\ndata: test\n\n", None),
    ("event type", b"event: logline\ndata: New user connected\n\n", None),
    ("id with NUL is ignored", b"data: test\nid: 123\x00\n\n", None),
    ("invalid retry", b"retry: 1667a\n\n", None),
    ("unknown field", b"something: ignore\n\n", None),
    ("U+2028 is not a line break", b'event: message\ndata: {"text":"Hello\xe2\x80\xa8World"}\n\n', None),
    # Line endings
    ("CRLF", b"id: 7\r\nevent: done\r\ndata: {}\r\n\r\n", None),
    ("lone CR", b"data: a\rdata: b\r\rid: 2\rdata: c\r\r", None),
    ("mixed line endings", b"data: x\r\n\ndata: y\n\r\ndata: z\r\r\n", None),
    # What the reference server sends (FastAPI's encoder), with multi-byte UTF-8 to split
    ("FastAPI frames with UTF-8", format_sse_event(data_str=EVENT_JSON, id="1")
     + format_sse_event(data_str="line one\nline two", id="2")
     + format_sse_event(event="done", data_str='{"events": 2}', id="3"), None),
    # The reference server's keep-alive (turns.PING): a comment line alone, between two frames
    ("keep-alive comment lines mid-answer", Frame(1, "event", EVENT_JSON).encode() + PING * 3
     + Frame(2, "event", '{"n": 2}').encode() + PING + Frame(3, "done", '{"events": 2}').encode(), None),
    # Where httpx-sse 0.4.3 departs from the standard
    ("retry alone dispatches nothing", b"retry: 10000\n\n", []),
    ("a comment after an id dispatches nothing (httpx-sse issue #35)",
     b"id: 5\ndata: a\n\n: ping\n\ndata: b\n\n", [("message", "a", "5"), ("message", "b", "5")]),
    ("event without data dispatches nothing", b"event: done\n\n", []),
    ("a leading BOM is dropped", b"\xef\xbb\xbfdata: bom\n\n", [("message", "bom", "")]),
]


def httpx_sse_events(raw: bytes) -> list[tuple[str, str, str]]:
    """What httpx-sse's decoder yields for the whole body."""
    lines, decoder = SSELineDecoder(), SSEDecoder()
    events = []
    for line in lines.decode(raw.decode("utf-8")) + lines.flush():
        if (sse := decoder.decode(line)) is not None:
            events.append((sse.event, sse.data, sse.id))
    return events


@pytest.fixture(scope="module")
def parser_page() -> Iterator:
    """A blank page whose origin serves static/ from disk, with sse.js imported."""
    with chromium() as browser:
        page = browser.new_page()

        def serve(route):
            name = route.request.url.removeprefix(f"{ORIGIN}/static/")
            path = STATIC_DIR / name
            if route.request.url.startswith(f"{ORIGIN}/static/") and path.is_file():
                route.fulfill(path=path, content_type="text/javascript")
            else:
                route.fulfill(body="<!doctype html><title>parser</title>", content_type="text/html")

        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/")
        page.evaluate("""async () => { window.sse = await import("/static/sse.js"); }""")
        yield page


# Feeds the bytes to a new parser in the given pieces; returns the events and the state.
FEED = """(bytes) => {
  const data = new Uint8Array(bytes);
  const run = (cuts) => {
    const parser = new window.sse.SSEParser();
    const events = [];
    let start = 0;
    for (const cut of [...cuts, data.length]) {
      events.push(...parser.feed(data.subarray(start, cut)));
      start = cut;
    }
    const cut = parser.end();
    return JSON.stringify({ events: events.map((e) => [e.type, e.data, e.id]), retry: parser.retry, cut });
  };
  const whole = run([]);
  const n = data.length;
  const splits = [];
  for (let i = 1; i < n; i++) splits.push([i]);
  if (n <= 120) for (let i = 1; i < n; i++) for (let j = i + 1; j < n; j++) splits.push([i, j]);
  splits.push(Array.from({ length: n - 1 }, (_, i) => i + 1)); // one byte at a time
  const differing = splits.filter((cuts) => run(cuts) !== whole);
  return { whole: JSON.parse(whole), runs: splits.length + 1, differing: differing.slice(0, 3) };
}"""


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_js_parser_matches_httpx_sse_at_every_split(parser_page, name, raw, expected):
    result = parser_page.evaluate(FEED, list(raw))
    events = [tuple(e) for e in result["whole"]["events"]]
    reference = httpx_sse_events(raw)
    if expected is None:
        assert events == reference, f"{name}: httpx-sse yields {reference}"
    else:
        assert events == expected, f"{name}: the standard dispatches {expected}"
        assert reference != expected, f"httpx-sse now agrees with the standard on {name!r}: drop the override"
    assert result["differing"] == [], f"{name}: splitting the bytes at {result['differing']} changed the events"
    assert result["runs"] >= len(raw)


def test_retry_and_last_event_id_are_kept(parser_page):
    state = parser_page.evaluate("""() => {
      const parser = new window.sse.SSEParser();
      const enc = new TextEncoder();
      parser.feed(enc.encode("retry: 2500\\nid: 41\\ndata: x\\n\\n: ping\\n\\n"));
      return { retry: parser.retry, lastEventId: parser.lastEventId };
    }""")
    assert state == {"retry": 2500, "lastEventId": "41"}


def test_an_unfinished_frame_is_reported_as_a_cut(parser_page):
    cut, complete = parser_page.evaluate("""() => {
      const enc = new TextEncoder();
      const a = new window.sse.SSEParser(); a.feed(enc.encode("data: {\\"partial\\": tr"));
      const b = new window.sse.SSEParser(); b.feed(enc.encode("data: {}\\n\\n"));
      return [a.end(), b.end()];
    }""")
    assert cut is True and complete is False
