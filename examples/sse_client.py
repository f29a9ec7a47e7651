"""A Python client of the workshop's SSE endpoints: print the answer as it streams.

    pip install httpx httpx-sse                  # verified with httpx 0.28.1, httpx-sse 0.4.3
    python sse_client.py "What's the weather in Paris?" --url http://127.0.0.1:8000 --token tok-alice

It talks to ``minimal_sse_endpoint.py`` (next to this file) or to the workshop's reference
server (``make serve`` prints a token), which share the contract: ``POST /api/sessions``, then
``POST /api/sessions/{id}/messages`` with ``{"text": ...}``, answered by one SSE frame per ADK
event and a terminal frame. ``--session ID`` continues a conversation (the id is printed on
stderr); ``--token`` defaults to ``$SSE_TOKEN``, else ``tok-alice``.

Only the answer goes to stdout, each piece once, as it arrives; tool calls and the ending go
to stderr. A server that restarts mid-answer ends the stream with ``event: error`` whose JSON
says ``"retry": "resend"`` (it kept nothing of the turn), and one that is shutting down refuses
a new message with 503 ``SERVER_DRAINING``: the client then sends the same message again, and
another server answers it whole (the partial answer printed so far is followed by the whole
one on a new line). A connection that drops mid-answer is resumed where it broke (``GET
.../stream`` with ``Last-Event-ID``): the reference server replays the frames missed, so each
piece is printed once and the model is not asked again. Exit status: 0 after ``event: done``;
1 after ``event: error`` (its code and message printed), ``event: cancelled``, a refusal
before the stream (a 4xx or 5xx and its JSON error) or a stream that broke off without a
terminal frame and could not be resumed (the minimal endpoint keeps nothing to resume).
"""

import argparse
import asyncio
import json
import os
import sys

import httpx
from httpx_sse import aconnect_sse


def say(*what: object) -> None:
    print(*what, file=sys.stderr, flush=True)


def answer_text(event: dict) -> str:
    """The answer text of an ADK event as JSON (camelCase); thoughts are not the answer."""
    parts = (event.get("content") or {}).get("parts") or []
    return "".join(part.get("text", "") for part in parts if not part.get("thought"))


def refusal(response: httpx.Response) -> str:
    """``{"error": {"code", "message"}}`` as one line, or whatever the body was."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:200]}"


RESEND = None  # what stream_answer returns when the server asks for the message again
ATTEMPTS = 3
# A dropped connection is resumed after these waits, one per attempt: the reference server keeps
# a turn running for 30 s after its client left (WORKSHOP_RESUME_GRACE_S) and replays what it missed.
RESUME_WAITS_S = (0.25, 0.5, 1.0, 2.0, 4.0)


class Cut(Exception):
    """The stream ended, or the connection dropped, before a terminal frame."""


# [snippet: httpx-sse-client]
async def print_frames(source, seen: dict) -> int | None:
    """Print one stream's answer; at its terminal frame return the exit status, or RESEND.
    ``seen`` outlives the connection: the last frame id (where a resume starts) and the text
    printed per ADK event. Raise ``Cut`` if the stream ends without a terminal frame."""
    try:
        async for sse in source.aiter_sse():
            seen["last_id"] = sse.id or seen["last_id"]
            if sse.event == "done":
                print(flush=True)
                return 0
            if sse.event == "error":
                error = json.loads(sse.data)["error"]
                say(f"\n[error] {error['code']}: {error['message']}")
                return RESEND if error.get("retry") == "resend" else 1
            if sse.event == "cancelled":
                say(f"\n[cancelled] {json.loads(sse.data).get('reason')}")
                return 1
            if sse.event != "message" or not sse.data:
                continue  # a frame kind this client does not know, or an empty keep-alive
            event = json.loads(sse.data)
            # Partial events carry pieces of text; the non-partial event with the same id
            # repeats the whole: print only what the pieces have not shown.
            shown = seen["text"]
            piece, before = answer_text(event), shown.get(event.get("id", ""), "")
            new = piece if event.get("partial") else piece[len(before):] if piece.startswith(before) else ""
            if new:
                print(new, end="", flush=True)
                shown[event.get("id", "")] = before + new
            if not event.get("partial"):
                for part in (event.get("content") or {}).get("parts") or []:
                    if call := part.get("functionCall"):
                        say(f"\n[tool call] {call['name']}({call.get('args', {})})")
    except httpx.TransportError as exc:  # reset, or a body cut short (RemoteProtocolError)
        raise Cut(f"{type(exc).__name__}: {exc}") from exc
    raise Cut("the stream ended without done or error")


async def stream_answer(client: httpx.AsyncClient, session_id: str, text: str) -> int | None:
    """Send one message and print the streamed answer; return the exit status, or RESEND.
    A connection that drops mid-answer is resumed where it broke (``resume``) when the server
    named the turn (``X-Turn-Id``, as the reference server does)."""
    seen: dict = {"last_id": "", "text": {}}
    async with aconnect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                            json={"text": text}) as source:
        if source.response.status_code != 200:
            await source.response.aread()
            say(f"[refused] {refusal(source.response)}")
            return RESEND if "SERVER_DRAINING" in refusal(source.response) else 1
        turn_id = source.response.headers.get("X-Turn-Id")
        try:
            return await print_frames(source, seen)
        except Cut as cut:
            if not turn_id:
                say(f"\n[broken] {cut}")
                return 1
            say(f"\n[connection lost] {cut}")
    return await resume(client, session_id, turn_id, seen)


async def resume(client: httpx.AsyncClient, session_id: str, turn_id: str, seen: dict) -> int | None:
    """``GET .../stream`` with ``Last-Event-ID``: the frames missed, then the rest live, each
    printed once; the model is not asked again. ``?turn=`` refuses any newer turn (404). Tried
    again after each wait of RESUME_WAITS_S while the connection fails or the server answers
    429 or 5xx (a proxy whose worker went away); any other refusal ends it."""
    for wait in RESUME_WAITS_S:
        await asyncio.sleep(wait)
        say(f"[resuming] after frame {seen['last_id'] or 0}")
        try:
            async with aconnect_sse(client, "GET", f"/api/sessions/{session_id}/stream",
                                    params={"turn": turn_id},
                                    headers={"Last-Event-ID": seen["last_id"] or "0"}) as source:
                status = source.response.status_code
                if status != 200:
                    await source.response.aread()
                    say(f"[refused] {refusal(source.response)}")
                    if status == 429 or status >= 500:
                        continue
                    return 1
                return await print_frames(source, seen)
        except (Cut, httpx.TransportError) as exc:
            say(f"\n[connection lost] {exc}")
    say("[broken] the connection kept dropping: gave up resuming")
    return 1
# [end snippet]


async def send(client: httpx.AsyncClient, session_id: str, text: str) -> int:
    """``stream_answer``, sending the message again (at most ATTEMPTS times in all) when the
    server asks for it: nothing of the first attempt stayed in the session."""
    for attempt in range(ATTEMPTS):
        if attempt:
            print(flush=True)  # the whole answer starts on a line of its own
            say(f"[resending] attempt {attempt + 1} of {ATTEMPTS}")
            await asyncio.sleep(0.5 * attempt)
        status = await stream_answer(client, session_id, text)
        if status is not RESEND:
            return status
    return 1


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="+", help="the message")
    parser.add_argument("--url", default=os.environ.get("SSE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("SSE_TOKEN", "tok-alice"))
    parser.add_argument("--session", help="continue this session instead of creating one")
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.token}"}
    # No read timeout: a stream may stay quiet while the model thinks (the server pings).
    timeout = httpx.Timeout(10.0, read=None)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=timeout) as client:
        session_id = args.session
        if session_id is None:
            created = await client.post("/api/sessions")
            if created.status_code != 201:
                say(f"[refused] {refusal(created)}")
                return 1
            session_id = created.json()["session_id"]
        say(f"[session {session_id}]")
        try:
            return await send(client, session_id, " ".join(args.text))
        except httpx.TransportError as exc:  # connection refused or reset before any stream
            say(f"\n[broken] {type(exc).__name__}: {exc}")
            return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
