"""Checks for 04_event_anatomy_and_sse_serialization, and the reference SSE code they use.

- ``ReferenceParser`` / ``spec_parse``: an incremental ``text/event-stream`` parser that follows
  the WHATWG HTML standard ("Interpreting an event stream", section 9.2.6) to the letter.
- ``httpx_sse_parse``: the same bytes through httpx-sse's public API (``EventSource``).
- ``reference_encode``: a frame encoder that round-trips through both.
- ``PARSER_CASES``: the inputs the parser check feeds, each aimed at one rule of the spec.

httpx-sse 0.4.3 departs from the standard on a few inputs (``HTTPX_SSE_DIVERGENCES``; see its
issue #35). The checks compare a learner's answer with httpx-sse everywhere else, and with the
standard there; tests/test_checks_04.py proves that split still holds for the pinned version.
"""

from __future__ import annotations

import codecs
import os
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource

from ._report import fail, learner_output, passed

LINE_END = re.compile(r"\r\n|\r|\n")  # the only three line endings the standard knows
ADK_PROMPT = "What is the capital of Brazil?"  # offline: "Brasília", a two-byte character
MODEL_PROMPT = "Count to 5"


@dataclass(frozen=True)
class Message:
    """One dispatched message, as a browser's ``MessageEvent`` would carry it."""

    event: str = "message"
    data: str = ""
    id: str = ""  # the last event ID when it was dispatched (it carries over)
    retry: int | None = None  # a valid retry field in this message's block, if any


class ReferenceParser:
    """Feed bytes as they arrive from the network; get the messages they complete."""

    def __init__(self) -> None:
        # "utf-8-sig": UTF-8 that drops one leading byte order mark, as the standard's
        # "UTF-8 decode" does; incremental, so a character split across reads waits.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._line = ""  # an unfinished line, waiting for its line ending
        self._after_cr = False  # the last read ended in "\r": a "\n" next completes a CRLF
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self.last_event_id = ""  # survives dispatch, as the standard says
        self.retry: int | None = None  # the reconnection time the server asked for, in ms

    def feed(self, chunk: bytes) -> list[Message]:
        return self.feed_text(self._decoder.decode(chunk))

    def feed_text(self, text: str) -> list[Message]:
        """The same for text already decoded (the standard's steps after UTF-8 decoding)."""
        if not text:
            return []
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        lines = LINE_END.split(text)
        lines[0] = self._line + lines[0]
        self._line = lines.pop()
        messages = []
        for line in lines:
            message = self._process(line)
            if message is not None:
                messages.append(message)
        return messages

    def _process(self, line: str) -> Message | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive ": ping"
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = self.retry = int(value)
        return None

    def _dispatch(self) -> Message | None:
        message = None
        if self._data:  # no data line since the last dispatch: nothing to dispatch
            message = Message(self._event or "message", "\n".join(self._data), self.last_event_id, self._retry)
        self._event, self._data, self._retry = "", [], None
        return message


def spec_parse(chunks: bytes | Iterable[bytes]) -> list[Message]:
    """Every message in a whole stream, read as the given chunks; the end discards a partial block."""
    parser = ReferenceParser()
    return [m for chunk in _chunks(chunks) for m in parser.feed(chunk)]


def httpx_sse_parse(chunks: bytes | Iterable[bytes]) -> list[Message]:
    """The same, through httpx-sse's public API over an httpx response with those chunks."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(_chunks(chunks)))
    return [Message(s.event, s.data, s.id, s.retry) for s in EventSource(response).iter_sse()]


def _chunks(chunks: bytes | Iterable[bytes]) -> list[bytes]:
    return [chunks] if isinstance(chunks, bytes | bytearray) else list(chunks)


def reference_encode(data: str, event: str | None = None, id: str | None = None, retry: int | None = None) -> bytes:
    """One SSE frame: optional event, id and retry lines, one data line per line, a blank line."""
    for name, value in (("event", event), ("id", id)):
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError(f"an SSE {name} cannot contain a line break: {value!r}")
    if id is not None and "\0" in id:
        raise ValueError("an SSE id cannot contain NUL (clients ignore such an id)")
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        if retry < 0:
            raise ValueError(f"retry must be a non-negative number of milliseconds, not {retry}")
        lines.append(f"retry: {int(retry)}")
    lines += [f"data: {line}" for line in LINE_END.split(data)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


# ---------------------------------------------------------------------------------------
# The inputs of the parser check, simplest first: the first one a parser gets wrong names
# the rule it breaks.


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    rule: str  # the rule of the standard this input exercises
    hint: str
    httpx_sse_differs: str = ""  # why httpx-sse 0.4.3 gives another answer, if it does


PARSER_CASES = [
    Case("one message", b"data: hello\n\n",
         "A message is its lines, then a blank line; 'data: hello' carries 'hello'.",
         "Split the text into lines, collect data values, and dispatch a Message at each empty line."),
    Case("two messages in one read", b"data: first\n\ndata: second\n\n",
         "One read can complete several messages; return all of them, in order.",
         "Loop over every complete line of the read; append each dispatched Message to the list you return."),
    Case("no space after the colon", b"data:tight\n\n",
         "The space after the colon is optional.",
         "name, _, value = line.partition(':'); then drop one leading space if there is one."),
    Case("two spaces after the colon", b"data:  indented\n\n",
         "Exactly one space after the colon is removed; the second one is part of the value.",
         "Use `if value.startswith(' '): value = value[1:]`, not value.strip() or lstrip()."),
    Case("a colon in the value", b'data: {"answer": 42}\n\n',
         "Only the first colon separates the field name from the value.",
         "Use line.partition(':') (or split(':', 1)), not line.split(':')."),
    Case("multi-line data", b"data: line one\ndata: line two\n\n",
         "Several data lines in one message are joined with '\\n'.",
         "Append each data value to a list and dispatch '\\n'.join(values)."),
    Case("empty data lines", b"data: a\ndata:\ndata\n\n",
         "'data:' and a bare 'data' both add an empty line to the data.",
         "A line without a colon is a field name with an empty value; keep empty data values too."),
    Case("event, id and retry", b"event: update\nid: 42\nretry: 3000\ndata: x\n\n",
         "event sets the type, id the last event ID, retry the reconnection time (ms).",
         "Handle the fields 'event', 'id' and 'retry' (an int) besides 'data'."),
    Case("the event type resets", b"event: update\ndata: 1\n\ndata: 2\n\n",
         "The event type applies to one message; the next one is 'message' again.",
         "After each dispatch, reset the event type (and data and retry) buffers."),
    Case("the id carries over", b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
         "The last event ID is kept for later messages until an id field changes it; "
         "an empty 'id' resets it to ''.",
         "Keep last_event_id on the parser (not per message), set it only from an id field, "
         "and use it for every dispatched Message."),
    Case("an id with NUL is ignored", b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
         "An id value that contains U+0000 NULL is ignored.",
         "Only set last_event_id when '\\0' not in value."),
    Case("retry must be digits", b"retry: soon\ndata: x\n\nretry: -5\ndata: y\n\nretry:  7\ndata: z\n\n",
         "A retry value that is not only ASCII digits is ignored ('-5', ' 7' and 'soon' alike).",
         "Set retry only when value.isascii() and value.isdigit(); int() accepts too much.",
         httpx_sse_differs="httpx-sse takes whatever int() accepts ('-5', ' 7')"),
    Case("unknown and mis-cased fields", b"Data: no\nfoo: bar\ndata: yes\n\n",
         "Field names are case-sensitive; unknown fields are ignored.",
         "Compare names exactly ('data', 'event', 'id', 'retry') and ignore the rest."),
    Case("a comment-only block", b": ping\n\ndata: x\n\n",
         "Lines starting with ':' are comments (keep-alives); a block with no data line "
         "dispatches nothing.",
         "Skip lines that start with ':'; at a blank line, dispatch only if at least one data line "
         "was seen."),
    Case("a ping after an id", b"id: 7\ndata: a\n\n: ping\n\n",
         "A comment block after a message with an id still dispatches nothing.",
         "Dispatch only when a data line was seen; the last event ID alone is no reason to dispatch.",
         httpx_sse_differs="httpx-sse dispatches an empty message here (its issue #35)"),
    Case("a block without data", b"event: ping\nretry: 1000\n\ndata: x\n\n",
         "A block with fields but no data line is not a message, and its event type does not "
         "leak into the next message.",
         "At a blank line with no data seen, reset the event type and retry and dispatch nothing.",
         httpx_sse_differs="httpx-sse dispatches a message with empty data for the first block"),
    Case("extra blank lines", b"\n\ndata: x\n\n\n\n",
         "Blank lines with nothing before them dispatch nothing.",
         "Dispatch only when a data line was seen since the last blank line."),
    Case("an unfinished message", b"data: done\n\ndata: not finished\n",
         "A message is dispatched by its blank line, never before.",
         "Keep collecting until the blank line; do not dispatch a block when a read ends."),
    Case("CRLF line endings", b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
         "Lines may end in '\\r\\n' (the Gemini API uses it), '\\n' or '\\r'.",
         "Split on all three: re.split(r'\\r\\n|\\r|\\n', text). Splitting on '\\n\\n' misses "
         "'\\r\\n\\r\\n'."),
    Case("CR line endings", b"data: a\rdata: b\r\rdata: c\r\r",
         "A lone '\\r' ends a line too.",
         "Split on '\\r\\n', '\\r' and '\\n' (in that order of preference)."),
    Case("mixed line endings", b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\n",
         "Any mix of the three endings is allowed, even within one message.",
         "Treat '\\r\\n' as one ending, and a '\\r' or '\\n' on its own as one ending."),
    Case("a byte order mark", b"\xef\xbb\xbfdata: bom\n\ndata: \xef\xbb\xbfkept\n\n",
         "One byte order mark at the very start of the stream is ignored (only there).",
         "Decode with codecs.getincrementaldecoder('utf-8-sig')(), which drops a leading BOM once.",
         httpx_sse_differs="httpx decodes as plain UTF-8: the BOM sticks to the first field "
         "name and the first message is lost"),
    Case("Unicode line separators", "data: a\u2028b\x0cc\x85d\x1ce\n\n".encode(),
         "Only '\\r\\n', '\\r' and '\\n' end a line; U+2028, form feed (\\x0c), NEL (\\x85) and "
         "the other separators str.splitlines() knows are data (JSON leaves U+2028 unescaped).",
         "Split with re.split(r'\\r\\n|\\r|\\n', text), not str.splitlines(), which also splits at "
         "U+2028, '\\x0c', '\\x1c'-'\\x1e' and '\\x85'."),
    Case("non-ASCII text", "data: Brasília, €5, 😀\n\n".encode(),
         "The stream is UTF-8.",
         "Decode the bytes as UTF-8 (incrementally: see the split checks)."),
]
HTTPX_SSE_DIVERGENCES = [case.name for case in PARSER_CASES if case.httpx_sse_differs]


def expected_messages(case: Case) -> list[Message]:
    """httpx-sse's reading of the input, or the standard's where httpx-sse 0.4.3 departs from it."""
    return spec_parse(case.raw) if case.httpx_sse_differs else httpx_sse_parse(case.raw)


def _authority(case: Case) -> str:
    if case.httpx_sse_differs:
        return f"the standard gives (here httpx-sse 0.4.3 does not: {case.httpx_sse_differs})"
    return "httpx-sse and the standard give"


# ---------------------------------------------------------------------------------------
# Exercise 4.1: encode_frame


@dataclass(frozen=True)
class _Frame:
    args: tuple
    kwargs: dict
    expect: Message
    hint: str


_FRAMES = [
    _Frame(("hello",), {}, Message(data="hello"),
           "Write 'data: hello', then end the frame with an empty line: b'data: hello\\n\\n'."),
    _Frame(("line one\nline two",), {}, Message(data="line one\nline two"),
           "A line break inside data would end the data line: write one 'data: ' line per line."),
    _Frame((" indented",), {}, Message(data=" indented"),
           "Write 'data: ' with one space: a parser removes exactly one space after the colon, so "
           "a value's own leading space survives only behind it."),
    _Frame(("",), {}, Message(data=""),
           "Empty data still needs one 'data: ' line, or nothing is dispatched (''.splitlines() is [])."),
    _Frame(("ends with a newline\n",), {}, Message(data="ends with a newline\n"),
           "A trailing line break means a last, empty data line; str.splitlines() drops it. "
           "Split with re.split(r'\\r\\n|\\r|\\n', data)."),
    _Frame(("a\rb",), {}, Message(data="a\nb"),
           "A parser ends lines at '\\r' too: split data on '\\r\\n', '\\r' and '\\n'."),
    _Frame(("a\u2028b",), {}, Message(data="a\u2028b"),
           "SSE knows only '\\r\\n', '\\r' and '\\n'; str.splitlines() also splits at U+2028 and other "
           "Unicode separators (which JSON leaves unescaped). Use re.split(r'\\r\\n|\\r|\\n', data)."),
    _Frame(("Brasília €",), {}, Message(data="Brasília €"),
           "Encode the text as UTF-8: frame.encode('utf-8')."),
    _Frame(("x",), {"event": "update", "id": "42", "retry": 3000}, Message("update", "x", "42", 3000),
           "Write 'event: ...', 'id: ...' and 'retry: ...' lines for the arguments that are not None."),
    _Frame(("x",), {"retry": 0}, Message(data="x", retry=0),
           "retry=0 is a valid value: test `retry is not None`, not `if retry:`."),
    _Frame(("x",), {"event": None, "id": None, "retry": None}, Message(data="x"),
           "Leave out the lines whose argument is None (no 'event: None')."),
]


def _encode(encode_frame, *args, **kwargs) -> bytes:
    try:
        with learner_output():
            frame = encode_frame(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:  # a learner's bug: report it as a failed check, with the call
        shown = ", ".join([repr(a) for a in args] + ([_call(kwargs)] if kwargs else []))
        hint = ("SSE is always UTF-8: encode the frame with .encode('utf-8')."
                if isinstance(exc, UnicodeError) else "Call it yourself with these arguments and read the traceback.")
        fail(f"encode_frame({shown}) raised {type(exc).__name__}: {exc}", hint)
    if isinstance(frame, str):
        fail(f"encode_frame returned a str ({frame[:40]!r}...), not bytes.",
             "The wire carries bytes: return the frame text .encode('utf-8').")
    if not isinstance(frame, bytes | bytearray):
        fail(f"encode_frame returned {type(frame).__name__}, not bytes.",
             "Build the frame as text and return text.encode('utf-8').")
    return bytes(frame)


def _call(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def check_encode_frame(encode_frame: Callable[..., bytes]) -> None:
    """Parse the learner's frames with httpx-sse (and the standard) and compare with the intent."""
    for frame_case in _FRAMES:
        args = ", ".join([repr(a) for a in frame_case.args] + ([_call(frame_case.kwargs)] if frame_case.kwargs else []))
        frame = _encode(encode_frame, *frame_case.args, **frame_case.kwargs)
        got = httpx_sse_parse(frame)
        spec = spec_parse(frame)
        if not spec:
            if not any(line == "data" or line.startswith("data:")
                       for line in LINE_END.split(frame.decode("utf-8", "replace"))):
                fail(f"encode_frame({args}) returned {frame!r}: it has no data line, so a client "
                     "dispatches nothing.", frame_case.hint)
            if not frame.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")):
                fail(f"encode_frame({args}) returned {frame!r}: no blank line ends it, so a client "
                     "never dispatches the message.",
                     "End every frame with an empty line: the last line's '\\n' plus one more '\\n'.")
            fail(f"encode_frame({args}) returned {frame!r}, which holds no message.", frame_case.hint)
        if len(spec) > 1 or len(got) > 1:
            fail(f"encode_frame({args}) returned {frame!r}, which a client reads as {len(got)} messages.",
                 "One frame, one blank line, at the end. " + frame_case.hint)
        if got[0] != frame_case.expect or spec[0] != frame_case.expect:
            if "None" in (got[0].event, got[0].id):
                fail(f"encode_frame({args}) returned {frame!r}: a client reads the type or id 'None'.",
                     "Leave out the lines whose argument is None: `if event is not None: ...`.")
            fail(f"encode_frame({args}) returned {frame!r}; httpx-sse reads it as {_show(got[0])}, "
                 f"but it should give {_show(frame_case.expect)}.", frame_case.hint)
    # Two frames in a row: an empty id must reset the last event ID.
    stream = _encode(encode_frame, "a", id="1") + _encode(encode_frame, "b", id="")
    ids = [m.id for m in httpx_sse_parse(stream)]
    if ids != ["1", ""]:
        fail(f"After encode_frame('a', id='1'), encode_frame('b', id='') gave last event IDs {ids}, not ['1', ''].",
             "id='' is a value: it resets the client's last event ID. Test `id is not None`, not `if id:`.")
    for kwargs in ({"event": "a\nb"}, {"event": "a\rb"}, {"id": "1\n2"}, {"id": "1\r\n"}, {"id": "1\x002"}):
        try:
            with learner_output():
                frame = encode_frame("x", **kwargs)
        except ValueError:
            continue
        fail(f"encode_frame('x', {_call(kwargs)}) returned {frame!r} instead of raising ValueError.",
             "A line break in event or id would start a new field (anyone who controls the value could "
             "inject 'data: ...'), and clients ignore an id that contains NUL: raise ValueError.")
    passed(f"encode_frame: {len(_FRAMES) + 1} frames read back by httpx-sse as intended; "
           "unsafe event and id values are refused.")


# ---------------------------------------------------------------------------------------
# Exercise 4.2: SSEParser


def _show(message) -> str:
    fields = [f"event={message.event!r}", f"data={message.data!r}"]
    if message.id:
        fields.append(f"id={message.id!r}")
    if message.retry is not None:
        fields.append(f"retry={message.retry!r}")
    return f"Message({', '.join(fields)})"


def _shows(messages: list) -> str:
    return "[" + ", ".join(_show(m) for m in messages) + "]" if messages else "no message"


def _normalise(messages, where: str) -> list[Message]:
    if messages is None:
        fail(f"feed() returned None {where}.", "Return a list, empty when the read completes no message.")
    try:
        items = list(messages)
    except TypeError:
        fail(f"feed() returned {type(messages).__name__} {where}, not a list of messages.",
             "Return a list of Message objects (possibly empty).")
    out = []
    for item in items:
        missing = [f for f in ("event", "data", "id", "retry") if not hasattr(item, f)]
        if missing:
            fail(f"feed() returned {item!r} {where}, which has no {', '.join(missing)}.",
                 "Return Message objects (the dataclass defined above the exercise).")
        out.append(Message(item.event, item.data, item.id, item.retry))
    return out


def _run(parser_class, chunks: list[bytes], where: str) -> list[Message]:
    with learner_output():
        parser = parser_class()
    messages = []
    for chunk in chunks:
        try:
            with learner_output():
                result = parser.feed(chunk)
        except NotImplementedError:
            raise
        except Exception as exc:  # a learner's bug: report it as a failed check, with the input
            if isinstance(exc, UnicodeDecodeError):
                fail(f"feed() raised UnicodeDecodeError {where}: a read ended inside a multi-byte "
                     "UTF-8 character.",
                     "Decode with an incremental decoder that keeps an unfinished character for the next "
                     "read: codecs.getincrementaldecoder('utf-8-sig')().")
            fail(f"feed() raised {type(exc).__name__}: {exc} {where}.",
                 "Run the failing input yourself: parser = SSEParser(); parser.feed(...).")
        messages += _normalise(result, where)
    return messages


def _explain(case: Case, got: list[Message], want: list[Message]) -> tuple[str, str]:
    """The most specific reason a whole-input result differs from the standard's."""
    what = f"Input {case.raw!r} ({case.name}): your parser gave {_shows(got)}; {_authority(case)} {_shows(want)}."
    has_cr = b"\r" in case.raw
    if not got and want and has_cr:
        return (what + " Lines ending in '\\r' were not recognised.",
                "Lines end in '\\r\\n', '\\n' or '\\r'. Splitting on '\\n\\n' or '\\n' alone finds no "
                "blank line in '\\r\\n\\r\\n'. Split with re.split(r'\\r\\n|\\r|\\n', text).")
    if len(got) == len(want):
        for g, w in zip(got, want, strict=True):
            if g.data != w.data:
                if g.data == "\n".join(" " + line for line in w.data.split("\n")):
                    return (what + " The space after 'data:' was kept.",
                            "Remove exactly one space after the colon: if value.startswith(' '): value = value[1:].")
                if g.data == w.data.lstrip() or g.data == w.data.strip():
                    return (what + " More than one leading space was removed.",
                            "Remove exactly one space after the colon, not all whitespace (no strip/lstrip).")
                if "\n" in w.data and g.data == w.data.replace("\n", ""):
                    return (what + " The data lines were joined without '\\n'.",
                            "Join data lines with '\\n': '\\n'.join(values).")
                if "\n" in w.data and g.data == w.data.split("\n")[-1]:
                    return (what + " Only the last data line was kept.",
                            "Append every data value to a list; each data line adds to the message.")
                if "\ufeff" in g.data or (not g.data and case.raw.startswith(codecs.BOM_UTF8)):
                    return what, case.hint
            if g.id != w.id:
                if w.id and not g.id:
                    return (what + " The last event ID was lost after the message that set it.",
                            "The last event ID carries over to later messages: keep it on the parser "
                            "and do not reset it at dispatch.")
                return (what + " The last event ID is wrong.", case.hint)
            if g.event != w.event:
                if not g.event:
                    return (what + " A message without an event field must have the type 'message'.",
                            "Dispatch Message(event=self._event or 'message', ...).")
                return (what + " The event type leaked from an earlier block.",
                        "Reset the event type after every blank line, whether or not a message was dispatched.")
    if len(got) > len(want) and all(m.data == "" for m in got if m not in want):
        return (what + " A block without any data line produced a message.",
                "At a blank line, dispatch only if a data line was seen (a ': ping' keep-alive, or "
                "only event/id/retry, is no message). The last event ID alone is no reason to dispatch.")
    return what + " Rule: " + case.rule, case.hint


def _split_hint(raw: bytes, position: int) -> tuple[str, str]:
    before, after = raw[position - 1 : position], raw[position : position + 1]
    if before == b"\r" and after == b"\n":
        return ("a '\\r' ended one read and its '\\n' began the next, and your parser saw two line "
                "endings (an extra blank line).",
                "Remember that a read ended in '\\r'; if the next read starts with '\\n', drop that '\\n'.")
    if after and 0x80 <= after[0] <= 0xBF:
        return ("the read ended inside a multi-byte UTF-8 character.",
                "chunk.decode() cannot decode half a character: use one incremental decoder for the whole "
                "stream, codecs.getincrementaldecoder('utf-8-sig')(), created in __init__.")
    if raw.startswith(codecs.BOM_UTF8) and position < 3:
        return ("the read ended inside the byte order mark.",
                "Let an incremental 'utf-8-sig' decoder drop the BOM; it waits for all three bytes.")
    return ("a line was split across two reads.",
            "Keep the unfinished end of each read in a buffer and put it in front of the next read; "
            "handle only complete lines.")


def _split_failure(case: Case, position: int, got: list[Message], want: list[Message]) -> None:
    why, hint = _split_hint(case.raw, position)
    fail(f"Input {case.raw!r} ({case.name}) read in two pieces, {case.raw[:position]!r} then "
         f"{case.raw[position:]!r}: your parser gave {_shows(got)}, not {_shows(want)}; {why}", hint)


def check_parser_cases(parser_class) -> int:
    """Every case whole, split in two at every byte, and byte by byte. Returns the reads tested."""
    reads = 0
    for case in PARSER_CASES:
        want = expected_messages(case)
        got = _run(parser_class, [case.raw], f"for {case.raw!r}")
        reads += 1
        if got != want:
            fail(*_explain(case, got, want))
    for case in PARSER_CASES:
        want = expected_messages(case)
        for position in range(1, len(case.raw)):
            pieces = [case.raw[:position], case.raw[position:]]
            got = _run(parser_class, pieces, f"for {pieces[0]!r} then {pieces[1]!r}")
            reads += 1
            if got != want:
                _split_failure(case, position, got, want)
        got = _run(parser_class, [case.raw[i : i + 1] for i in range(len(case.raw))],
                   f"for {case.raw!r} fed one byte at a time")
        reads += 1
        if got != want:
            fail(f"Input {case.raw!r} ({case.name}) fed one byte at a time: your parser gave {_shows(got)}, "
                 f"not {_shows(want)}.",
                 "Each read may hold any number of bytes, even one: buffer unfinished lines, a trailing "
                 "'\\r' and unfinished UTF-8 characters between reads.")
    return reads


def _chunkings(raw: bytes, seed: int = 4) -> list[tuple[str, list[bytes]]]:
    """Ways a network might cut these bytes: whole, byte by byte, random sizes, every tricky spot."""
    rng = random.Random(seed)
    ways = [("whole", [raw]), ("one byte at a time", [raw[i : i + 1] for i in range(len(raw))])]
    for size in (7, 64, 333):
        cuts, at = [], 0
        while at < len(raw):
            step = rng.randint(1, size)
            cuts.append(raw[at : at + step])
            at += step
        ways.append((f"in random reads of 1-{size} bytes", cuts))
    tricky = {i for i, b in enumerate(raw) if b in b"\r\n" or b >= 0x80}
    for position in sorted({p for i in tricky for p in (i, i + 1)} - {0, len(raw)}):
        ways.append((f"split at byte {position}", [raw[:position], raw[position:]]))
    return ways


async def _adk_turn(runner, prompt: str) -> list:
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.genai import types

    session = await runner.session_service.create_session(app_name=runner.app_name, user_id="checker")
    message = types.Content(role="user", parts=[types.Part(text=prompt)])
    return [event async for event in runner.run_async(
        user_id="checker", session_id=session.id, new_message=message,
        run_config=RunConfig(streaming_mode=StreamingMode.SSE))]


async def _model_wire_bytes(backend) -> bytes:
    """The raw bytes the (emulated) Gemini API sends for one streamed request."""
    from workshop.backend import PLACEHOLDER_KEY

    url = f"{backend.base_url}/v1beta/models/{backend.model}:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": MODEL_PROMPT}]}]}
    key = os.environ.get("GOOGLE_API_KEY") or PLACEHOLDER_KEY
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url, json=body, headers={"x-goog-api-key": key})
        response.raise_for_status()
        return response.content


def _encode_events(encode_frame, events) -> tuple[bytes, str]:
    """ADK events as frames from the learner's encoder (or the reference one), ': ping' between."""
    used = "your encode_frame"
    try:
        encode_frame("probe")
    except NotImplementedError:
        encode_frame, used = reference_encode, "the reference encoder (exercise 4.1 is not done yet)"
    frames = []
    for number, event in enumerate(events):
        frame = encode_frame(event.model_dump_json(exclude_none=True, by_alias=True), id=str(number))
        if not isinstance(frame, bytes | bytearray):
            frame = str(frame).encode()
        frames.append(bytes(frame) + b": ping\n\n")
    return b"".join(frames), used


async def check_sse_parser(parser_class, encode_frame=None, runner=None, backend=None) -> None:
    """The parser against the standard (and httpx-sse) on every case, then on real streams."""
    reads = check_parser_cases(parser_class)
    report = [f"{len(PARSER_CASES)} inputs, {reads} ways of reading them"]
    if runner is not None:
        from google.adk.events import Event

        events = await _adk_turn(runner, ADK_PROMPT)
        wire, used = _encode_events(encode_frame or reference_encode, events)
        for how, chunks in _chunkings(wire):
            got = _run(parser_class, chunks, f"on the frames of a real ADK turn read {how}")
            if len(got) != len(events):
                fail(f"The {len(events)} frames of a real ADK turn ({len(wire)} bytes, encoded by {used}), "
                     f"read {how}, gave {len(got)} messages.",
                     "Each frame is one message; ': ping' comment blocks between them are none.")
            for number, (message, event) in enumerate(zip(got, events, strict=True)):
                if message.id != str(number):
                    fail(f"Frame {number} of the ADK turn, read {how}, came back with id {message.id!r}.",
                         "Set the last event ID from each 'id:' line and put it on the dispatched Message.")
                try:
                    back = Event.model_validate_json(message.data)
                except ValueError as exc:
                    fail(f"Frame {number} of the ADK turn, read {how}: its data is not the event's JSON "
                         f"({exc.__class__.__name__}); data starts {message.data[:60]!r}.",
                         "The data must come back byte for byte; compare with httpx-sse on the same bytes.")
                if back.model_dump() != event.model_dump():
                    fail(f"Frame {number} of the ADK turn, read {how}, parsed into a different event.",
                         "Check the non-ASCII characters and the leading-space rule.")
        report.append(f"the {len(events)} events of a real ADK turn ({len(wire):,} bytes, {used}) "
                      f"read {len(_chunkings(wire))} ways")
    if backend is not None and getattr(backend, "offline", False):
        wire = await _model_wire_bytes(backend)
        want = httpx_sse_parse(wire)
        for how, chunks in _chunkings(wire):
            got = _run(parser_class, chunks, f"on the Gemini API's own stream read {how}")
            if got != want:
                fail(f"The Gemini API's stream ({len(wire)} bytes, '\\r\\n' line endings), read {how}: "
                     f"your parser gave {len(got)} messages, httpx-sse {len(want)}.",
                     "Lines end in '\\r\\n' here, and a '\\r' may end one read with its '\\n' in the next.")
        report.append(f"the model's own CRLF stream ({len(want)} chunks)")
    passed("SSEParser agrees with the standard and httpx-sse: " + "; ".join(report) + ".")
