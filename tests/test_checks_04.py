"""The check cells of notebook 04 pass right answers and explain typical wrong ones.

Also keeps the reference parser honest: it must agree with httpx-sse on every input except the
ones marked as httpx-sse divergences, and those must still diverge (or the marks are stale).
"""

import codecs
import contextlib
import re
from types import SimpleNamespace

import pytest
from google.adk.agents import Agent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService

from workshop.checks import CheckFailed, nb04

MODEL = "gemini-3.5-flash"
LINE_END = re.compile(r"\r\n|\r|\n")


@pytest.fixture
def runner(emulator):
    return Runner(app_name="workshop", agent=Agent(name="assistant", model=MODEL),
                  session_service=InMemorySessionService())


@pytest.fixture
def backend(emulator):
    return SimpleNamespace(offline=True, base_url=emulator.url, model=MODEL)


# --- the reference implementations -------------------------------------------------------

@pytest.mark.parametrize("case", nb04.PARSER_CASES, ids=lambda c: c.name)
def test_reference_parser_matches_httpx_sse_except_where_marked(case):
    spec, httpx_sse = nb04.spec_parse(case.raw), nb04.httpx_sse_parse(case.raw)
    if case.httpx_sse_differs:
        assert spec != httpx_sse, "httpx-sse now follows the standard here: drop the mark"
    else:
        assert spec == httpx_sse
    for position in range(1, len(case.raw)):
        pieces = [case.raw[:position], case.raw[position:]]
        assert nb04.spec_parse(pieces) == spec
        assert nb04.httpx_sse_parse(pieces) == httpx_sse
    assert nb04.spec_parse([case.raw[i : i + 1] for i in range(len(case.raw))]) == spec


def test_reference_encoder_round_trips():
    frame = nb04.reference_encode("a\nb\r\nc", event="update", id="7", retry=0)
    assert frame == b"event: update\nid: 7\nretry: 0\ndata: a\ndata: b\ndata: c\n\n"
    assert nb04.httpx_sse_parse(frame) == [nb04.Message("update", "a\nb\nc", "7", 0)]


# --- exercise 4.1 ----------------------------------------------------------------------------

def encoder(*, blank=True, split="regex", space=True, skip_falsy=False, none_lines=False,
            validate=True, as_str=False, encoding="utf-8"):
    def encode_frame(data, event=None, id=None, retry=None):
        if validate:
            for value in (event, id):
                if value is not None and ("\n" in value or "\r" in value or "\0" in value):
                    raise ValueError(value)
        lines = []
        for name, value in (("event", event), ("id", id), ("retry", retry)):
            if none_lines or (value if skip_falsy else value is not None):
                lines.append(f"{name}: {value}")
        pieces = {"regex": LINE_END.split(data), "splitlines": data.splitlines(), "none": [data]}[split]
        lines += [f"data:{' ' if space else ''}{piece}" for piece in pieces]
        text = "\n".join(lines) + ("\n\n" if blank else "\n")
        return text if as_str else text.encode(encoding)

    return encode_frame


def encode_by_replacing_line_ends(data, event=None, id=None, retry=None):
    """Another style: normalise the line endings, then build the frame as bytes."""
    for value in (event, id):
        if value is not None and any(c in value for c in "\r\n\0"):
            raise ValueError(f"unsafe SSE field value: {value!r}")
    frame = b""
    if event is not None:
        frame += b"event: " + event.encode() + b"\n"
    if id is not None:
        frame += b"id: " + id.encode() + b"\n"
    if retry is not None:
        frame += b"retry: %d\n" % retry
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        frame += b"data: " + line.encode("utf-8") + b"\n"
    return frame + b"\n"


@pytest.mark.parametrize("right", [encoder(), nb04.reference_encode, encode_by_replacing_line_ends])
def test_encoder_right_answers_pass(capsys, right):
    nb04.check_encode_frame(right)
    assert "✅" in capsys.readouterr().out


def encode_with_a_line_loop(data, event=None, id=None, retry=None):
    """Adds a line per data line, then the blank line: for empty data, no data line at all."""
    frame = ""
    for name, value in (("event", event), ("id", id), ("retry", retry)):
        if value is not None:
            frame += f"{name}: {value}\n"
    for line in data.splitlines():
        frame += f"data: {line}\n"
    return (frame + "\n").encode()


def test_encoder_without_a_data_line_for_empty_data_is_told_so(capsys):
    with pytest.raises(CheckFailed, match=re.escape("it has no data line")) as failure:
        nb04.check_encode_frame(encode_with_a_line_loop)
    assert "blank line" not in str(failure.value)


@pytest.mark.parametrize(("wrong", "message"), [
    (encoder(blank=False), "no blank line ends it"),
    (encoder(split="none"), "one 'data: ' line per line"),
    (encoder(space=False), "exactly one space"),
    (encoder(split="splitlines"), "splitlines"),
    (encoder(skip_falsy=True), "retry=0 is a valid value"),
    (encoder(none_lines=True), "'None'"),
    (encoder(validate=False), "instead of raising ValueError"),
    (encoder(as_str=True), "not bytes"),
    (encoder(encoding="latin-1"), "UTF-8"),
])
def test_encoder_wrong_answers_are_explained(wrong, message, capsys):
    with pytest.raises(CheckFailed, match=re.escape(message)):
        nb04.check_encode_frame(wrong)
    assert "Hint:" in capsys.readouterr().out


def test_encoder_empty_id_must_reset():
    def skips_empty_id(data, event=None, id=None, retry=None):
        return nb04.reference_encode(data, event, id or None, retry)

    with pytest.raises(CheckFailed, match="not `if id:`"):
        nb04.check_encode_frame(skips_empty_id)


def test_unfinished_encoder_raises_not_implemented():
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 4.1: encode one SSE frame")

    with pytest.raises(NotImplementedError):
        nb04.check_encode_frame(stub)


# --- exercise 4.2 ----------------------------------------------------------------------------

class Tweaked(nb04.ReferenceParser):
    """The reference parser with one typical mistake switched on."""

    keep_space = lstrip = join_flat = dispatch_always = reset_id = split_all_colons = False
    keep_event = lenient_retry = empty_type = False

    def _process(self, line):
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        if self.split_all_colons:
            name, *rest = line.split(":")
            value = rest[0] if rest else ""
        else:
            name, _, value = line.partition(":")
        if self.lstrip:
            value = value.lstrip()
        elif value.startswith(" ") and not self.keep_space:
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry":
            if self.lenient_retry:
                with contextlib.suppress(ValueError):
                    self._retry = int(value)
            elif value.isascii() and value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self):
        message = None
        if self._data or self.dispatch_always:
            data = ("" if self.join_flat else "\n").join(self._data)
            event = self._event if self.empty_type else (self._event or "message")
            message = nb04.Message(event, data, self.last_event_id, self._retry)
            if self.reset_id:
                self.last_event_id = ""
        if not self.keep_event:
            self._event = ""
        self._data, self._retry = [], None
        return message


def tweak(**flags):
    return type("Wrong", (Tweaked,), flags)


class SplitsOnBlankLF:
    """Buffers bytes and cuts messages at b'\\n\\n' only: the most common hand-written parser."""

    def __init__(self):
        self.buffer = b""
        self.last_event_id = ""

    def feed(self, chunk):
        self.buffer += chunk
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        messages = []
        for block in blocks:
            inner = Tweaked()
            inner.last_event_id = self.last_event_id
            messages += inner.feed(block + b"\n\n")
            self.last_event_id = inner.last_event_id
        return messages


class DecodesEachChunk(nb04.ReferenceParser):
    """chunk.decode() on each read: fine until a read ends inside a character."""

    def feed(self, chunk):
        text = chunk.decode("utf-8")
        if not hasattr(self, "_started"):
            self._started, text = True, text.removeprefix("\ufeff")
        return self.feed_text(text)


class ForgetsTrailingCR(nb04.ReferenceParser):
    def feed(self, chunk):
        self._after_cr = False
        return super().feed(chunk)


class NoLineBuffer(nb04.ReferenceParser):
    def feed(self, chunk):
        messages = super().feed(chunk)
        if self._line:
            self._line, leftover = "", self._line
            message = self._process(leftover)
            if message:
                messages.append(message)
        return messages


class SplitsWithSplitlines(nb04.ReferenceParser):
    """Cuts lines with str.splitlines(): right for '\\r\\n', '\\r' and '\\n', wrong for U+2028 and co."""

    def feed_text(self, text):
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        lines = (self._line + text).splitlines(keepends=True)
        self._line = lines.pop() if lines and not lines[-1].endswith(("\r", "\n")) else ""
        messages = []
        for line in lines:
            message = self._process(line.rstrip("\r\n"))
            if message is not None:
                messages.append(message)
        return messages


class CharByChar:
    """Another right style: a per-character state machine, not the reference's line splitting."""

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.line, self.skip_lf = [], False
        self.event, self.data, self.retry, self.last_event_id = "", [], None, ""

    def feed(self, chunk):
        messages = []
        for char in self.decoder.decode(chunk):
            if self.skip_lf and char == "\n":
                self.skip_lf = False
                continue
            self.skip_lf = char == "\r"
            if char not in "\r\n":
                self.line.append(char)
                continue
            line, self.line = "".join(self.line), []
            if line == "":
                if self.data:
                    messages.append(nb04.Message(self.event or "message", "\n".join(self.data),
                                                 self.last_event_id, self.retry))
                self.event, self.data, self.retry = "", [], None
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value
            elif name == "id" and "\0" not in value:
                self.last_event_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry = int(value)
        return messages


class ReturnsNone(nb04.ReferenceParser):
    def feed(self, chunk):
        super().feed(chunk)


@pytest.mark.parametrize("right", [nb04.ReferenceParser, CharByChar])
async def test_parser_right_answers_pass(runner, backend, capsys, right):
    await nb04.check_sse_parser(right, nb04.reference_encode, runner, backend)
    out = capsys.readouterr().out
    assert "✅" in out and "real ADK turn" in out and "CRLF stream" in out


async def test_parser_check_falls_back_to_the_reference_encoder(runner, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 4.1: encode one SSE frame")

    await nb04.check_sse_parser(nb04.ReferenceParser, stub, runner)
    assert "the reference encoder" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (SplitsOnBlankLF, "were not recognised"),
    (tweak(keep_space=True), "space after 'data:' was kept"),
    (tweak(lstrip=True), "More than one leading space"),
    (tweak(join_flat=True), "joined without '\\n'"),
    (tweak(dispatch_always=True), "without any data line produced a message"),
    (tweak(reset_id=True), "last event ID was lost"),
    (tweak(split_all_colons=True), "Only the first colon"),
    (tweak(keep_event=True), "event type leaked"),
    (tweak(empty_type=True), "type 'message'"),
    (tweak(lenient_retry=True), "ASCII digits"),
    (DecodesEachChunk, "multi-byte UTF-8"),
    (ForgetsTrailingCR, "extra blank line"),
    (NoLineBuffer, "split across two reads"),
    (ReturnsNone, "returned None"),
    (SplitsWithSplitlines, "not str.splitlines()"),
])
async def test_parser_wrong_answers_are_explained(wrong, message, capsys):
    with pytest.raises(CheckFailed, match=re.escape(message)):
        await nb04.check_sse_parser(wrong)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_parser_raises_not_implemented(runner):
    class Stub:
        def feed(self, chunk):
            raise NotImplementedError("Exercise 4.2: parse the lines this read completes")

    with pytest.raises(NotImplementedError):
        await nb04.check_sse_parser(Stub, nb04.reference_encode, runner)
