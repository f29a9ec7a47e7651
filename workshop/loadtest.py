"""A load test for the reference SSE server: many concurrent streaming conversations.

    python -m workshop.loadtest --streams 200          # what `make load` runs

starts the offline emulator at realistic pacing (0.3 s to the first token, 0.03 s per chunk),
the reference server as a separate process on a fresh SQLite file (``DATABASE_URL``), then
opens ``--streams`` conversations at once, each ``--turns`` turns ("Count to N", N varying so
that crossed streams would show). It checks that every stream arrives complete and in order
(frame ids 1, 2, ..., the partial texts add up to the final text, ``done`` last and counting
the frames) and that every session in the database holds exactly its turns; then it prints
p50/p99 time to first event and inter-event gap, and the server's memory per open stream.
Exit status 1 if anything was wrong.

PostgreSQL: ``--database-url postgresql://user:pw@host/db``; the server process inherits the
environment, so ``DATABASE_POOL_SIZE=50`` there sizes its connection pool (default 5 + 10).

``run_load(base_url, token, ...)`` is the same in code (tests/test_load.py, notebook 09);
``verify_sessions(report, session_service)`` does the database check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

# One percentile for the whole workshop (interpolated, NumPy's default; lesson 11 teaches it).
from .bench.stats import percentile


@dataclass
class Turn:
    """One streamed answer as the client saw it."""

    prompt: str
    first_event_s: float | None = None  # request sent -> first frame
    gaps_s: list[float] = field(default_factory=list)  # between consecutive frames
    frames: int = 0  # data frames (ADK events)
    final_texts: list[str] = field(default_factory=list)  # text of each non-partial event
    problem: str | None = None


@dataclass
class Conversation:
    session_id: str | None = None
    turns: list[Turn] = field(default_factory=list)
    problem: str | None = None


@dataclass
class LoadReport:
    streams: int
    turns_per_stream: int
    wall_s: float
    conversations: list[Conversation]
    rss_baseline: int | None = None  # the server's memory before the streams opened
    rss_peak: int | None = None  # the most it held while they were open
    session_problems: list[str] = field(default_factory=list)

    @property
    def all_turns(self) -> list[Turn]:
        return [turn for c in self.conversations for turn in c.turns]

    @property
    def first_event_s(self) -> list[float]:
        return [t.first_event_s for t in self.all_turns if t.first_event_s is not None]

    @property
    def gaps_s(self) -> list[float]:
        return [gap for t in self.all_turns for gap in t.gaps_s]

    @property
    def inside_gaps_s(self) -> list[float]:
        """The gaps between the events of an answer, all but each turn's last."""
        return [gap for t in self.all_turns for gap in t.gaps_s[:-1]]

    @property
    def last_gaps_s(self) -> list[float]:
        """Each turn's last gap: before its final event, which ADK writes to the session first."""
        return [t.gaps_s[-1] for t in self.all_turns if t.gaps_s]

    @property
    def problems(self) -> list[str]:
        found = [f"conversation {i}: {c.problem}" for i, c in enumerate(self.conversations) if c.problem]
        found += [f"conversation {i} turn {j}: {t.problem}" for i, c in enumerate(self.conversations)
                  for j, t in enumerate(c.turns) if t.problem]
        return found + self.session_problems

    @property
    def completed(self) -> int:
        """Streams (turns) that ended with ``done`` and passed every check."""
        return sum(1 for t in self.all_turns if t.problem is None and t.frames)

    @property
    def memory_per_stream(self) -> float | None:
        if self.rss_baseline is None or self.rss_peak is None:
            return None
        return max(0, self.rss_peak - self.rss_baseline) / self.streams

    def summary(self) -> str:
        ttfe, gaps = self.first_event_s, self.gaps_s
        lines = [
            f"{self.streams} concurrent conversations x {self.turns_per_stream} turns: "
            f"{self.completed}/{self.streams * self.turns_per_stream} streams complete in "
            f"{self.wall_s:.1f} s",
            f"time to first event: p50 {percentile(ttfe, 50) * 1000:.0f} ms, "
            f"p99 {percentile(ttfe, 99) * 1000:.0f} ms, max {max(ttfe, default=0) * 1000:.0f} ms",
            f"inter-event gap: p50 {percentile(gaps, 50) * 1000:.1f} ms, "
            f"p99 {percentile(gaps, 99) * 1000:.1f} ms ({len(gaps)} gaps); inside an answer "
            f"p50 {percentile(self.inside_gaps_s, 50) * 1000:.1f} ms, p99 "
            f"{percentile(self.inside_gaps_s, 99) * 1000:.1f} ms; before the final event (ADK "
            f"stores it first) p50 {percentile(self.last_gaps_s, 50) * 1000:.0f} ms, "
            f"p99 {percentile(self.last_gaps_s, 99) * 1000:.0f} ms",
        ]
        if self.memory_per_stream is not None:
            lines.append(f"server memory: {self.rss_baseline / 2**20:.0f} MiB before, "
                         f"{self.rss_peak / 2**20:.0f} MiB at peak: "
                         f"{self.memory_per_stream / 1024:.0f} KiB per open stream")
        problems = self.problems
        lines.append(f"problems: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
        return "\n".join(lines)


def default_prompt(conversation: int, turn: int) -> str:
    return f"Count to {4 + (conversation + 3 * turn) % 7}"


def _text(event: dict) -> str:
    return "".join(part.get("text", "") for part in (event.get("content") or {}).get("parts", [])
                   if not part.get("thought"))


async def stream_turn(client: httpx.AsyncClient, url: str, prompt: str) -> Turn:
    """POST one message and read its stream to the end, checking order and completeness."""
    turn = Turn(prompt)
    expected_id = 1
    partial_text = ""
    start = last = time.perf_counter()
    async with aconnect_sse(client, "POST", url, json={"text": prompt}) as source:
        if source.response.status_code != 200:
            await source.response.aread()
            turn.problem = f"HTTP {source.response.status_code}: {source.response.text[:200]}"
            return turn
        async for sse in source.aiter_sse():
            now = time.perf_counter()
            if sse.id != str(expected_id):
                turn.problem = f"frame id {sse.id!r}, expected {expected_id}"
                return turn
            expected_id += 1
            if sse.event == "done":
                if json.loads(sse.data).get("events") != turn.frames:
                    turn.problem = f"done counts {sse.data}, received {turn.frames} frames"
                return turn
            if sse.event != "message":
                turn.problem = f"event: {sse.event} {sse.data[:200]}"
                return turn
            if turn.frames == 0:
                turn.first_event_s = now - start
            else:
                turn.gaps_s.append(now - last)
            last = now
            turn.frames += 1
            event = json.loads(sse.data)
            if event.get("partial"):
                partial_text += _text(event)
            else:
                text = _text(event)
                if partial_text and text != partial_text:
                    turn.problem = f"final text {text!r} is not the streamed {partial_text!r}"
                    return turn
                partial_text = ""
                turn.final_texts.append(text)
    turn.problem = "the stream ended without done"
    return turn


async def run_conversation(client: httpx.AsyncClient, index: int, turns: int,
                           prompt: Callable[[int, int], str], start: asyncio.Event) -> Conversation:
    conversation = Conversation()
    try:
        response = await client.post("/api/sessions")
        response.raise_for_status()
        conversation.session_id = response.json()["session_id"]
        await start.wait()  # every conversation opens its first stream at the same moment
        for number in range(turns):
            turn = await stream_turn(client, f"/api/sessions/{conversation.session_id}/messages",
                                     prompt(index, number))
            conversation.turns.append(turn)
            if turn.problem:
                break
    except Exception as exc:  # noqa: BLE001 - reported, not raised: one failure must not hide the rest
        conversation.problem = f"{type(exc).__name__}: {exc}"
    return conversation


async def run_load(base_url: str, token: str, *, streams: int = 200, turns: int = 2,
                   prompt: Callable[[int, int], str] = default_prompt,
                   rss: Callable[[], int] | None = None, timeout_s: float = 120) -> LoadReport:
    """``streams`` conversations at once against ``base_url``; ``rss()`` (the server's memory,
    optional) is sampled every 20 ms while they run."""
    # An idle connection is dropped before the server's keep-alive timeout (uvicorn: 5 s) would
    # close it under a request being sent on it (a ReadError under load).
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10,
                          keepalive_expiry=2)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(30, connect=30)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=timeout) as client:
        # Warm up: one turn first, so that the baseline memory includes what any first
        # request allocates (imports, pools) and only the open streams remain.
        warm = await run_conversation(client, 0, 1, prompt, _set_event())
        if warm.problem or warm.turns[0].problem:
            raise RuntimeError(f"the warm-up turn failed: {warm.problem or warm.turns[0].problem}")
        baseline = rss() if rss else None
        peak = baseline
        start = asyncio.Event()
        tasks = [asyncio.create_task(run_conversation(client, i, turns, prompt, start))
                 for i in range(streams)]
        began = time.perf_counter()
        start.set()
        all_done = asyncio.gather(*tasks)
        try:
            async with asyncio.timeout(timeout_s):
                while not all_done.done():
                    if rss:
                        peak = max(peak, rss())
                    await asyncio.wait([all_done], timeout=0.02)
        except TimeoutError:
            for task in tasks:
                task.cancel()
            raise RuntimeError(f"the load did not finish in {timeout_s} s") from None
        conversations = all_done.result()
        wall = time.perf_counter() - began
    return LoadReport(streams, turns, wall, conversations, baseline, peak)


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def verify_sessions(report: LoadReport, session_service, app_name: str = "workshop",
                          user_id: str = "loadtest") -> list[str]:
    """Every session holds exactly its turns: the user's messages in order, each followed by
    the answer its stream delivered, nothing else. Problems are also added to the report."""
    problems = []
    for index, conversation in enumerate(report.conversations):
        if conversation.session_id is None:
            continue
        session = await session_service.get_session(app_name=app_name, user_id=user_id,
                                                    session_id=conversation.session_id)
        if session is None:
            problems.append(f"session {index}: not in the database")
            continue
        expected = []
        for turn in conversation.turns:
            expected.append(("user", turn.prompt))
            expected += [("model", text) for text in turn.final_texts]
        stored = [("user" if e.author == "user" else "model", _text(e.model_dump(mode="json")))
                  for e in session.events]
        if stored != expected:
            problems.append(f"session {index}: holds {stored}, expected {expected}")
    report.session_problems += problems
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workshop.loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200, help="concurrent conversations (200)")
    parser.add_argument("--turns", type=int, default=2, help="turns per conversation (2)")
    parser.add_argument("--first-token-s", type=float, default=0.3, help="emulator pacing (0.3)")
    parser.add_argument("--chunk-s", type=float, default=0.03, help="emulator pacing (0.03)")
    parser.add_argument("--database-url", default=None,
                        help="DATABASE_URL for the server (default: a fresh SQLite file)")
    parser.add_argument("--timeout-s", type=float, default=120)
    args = parser.parse_args(argv)

    from reference_server.persistence import session_service_from_url

    from .gemini_emulator import start_emulator
    from .servers.scaleout import ServerProcess

    token = "tok-load"
    with tempfile.TemporaryDirectory() as tmp, \
            start_emulator(first_token_s=args.first_token_s, chunk_s=args.chunk_s) as emulator:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'sessions.db'}"
        env = {"DATABASE_URL": database_url, "WORKSHOP_TOKENS": f"{token}:loadtest",
               "GOOGLE_GEMINI_BASE_URL": emulator.url, "GOOGLE_API_KEY": "offline-emulator"}
        with ServerProcess(env) as server:
            print(f"server pid {server.pid} on {server.url}; emulator {emulator.url} "
                  f"(first token {args.first_token_s} s, {args.chunk_s} s per chunk)", flush=True)
            report = asyncio.run(run_load(server.url, token, streams=args.streams, turns=args.turns,
                                          rss=server.rss_bytes, timeout_s=args.timeout_s))
        service = session_service_from_url(database_url)
        asyncio.run(verify_sessions(report, service))
    print(report.summary())
    ttfe = report.first_event_s
    if ttfe:
        print(f"(stdev of time to first event {statistics.pstdev(ttfe) * 1000:.0f} ms)")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
