"""Graceful drain: what a worker does between SIGTERM and its exit (a deploy, a scale-in).

1. **No new turns.** ``POST .../messages`` (and ``/api/chat``) is answered 503
   ``SERVER_DRAINING`` with ``Retry-After``, before any byte of a stream: a proxy
   (``deploy/nginx.conf.template``: ``proxy_next_upstream http_503``) sends it to another
   worker, or the client retries. ``/healthz`` answers 503 so a load balancer stops choosing
   this worker. Everything else (history, resume, cancel) is still served.
2. **Running turns finish**, for at most ``drain_s`` (``WORKSHOP_DRAIN_S``, default 8 s).
3. **The rest is handed over**: each turn still running is cancelled, rewound in the session
   (ADK's ``Runner.rewind_async``: no half answer, not even the question, stays in what the
   model sees), and its stream ends with ``event: error`` ``SERVER_RESTARTING`` whose JSON
   says ``"retry": "resend"``: the client sends the same message again, another worker
   answers it whole. The history then holds that message once, and one answer.
4. **Streams of turns running on another process end** (shared replay store: a client that
   resumed here), within a second, without a terminal frame: the client resumes again, and
   reaches a process that stays (this one stops listening next), with every frame once. So
   the process exits when the drain ends, not at uvicorn's graceful timeout.

uvicorn closes its listening socket and then waits for open connections *before* the app's
lifespan ends, so a drain that starts in the lifespan's exit comes too late for the streams:
``DrainingServer`` (what ``python -m reference_server`` runs) drains first, then lets uvicorn
shut down. Under another server the lifespan's exit still drains, once that server has closed
the connections: step 2 only with a shared replay store (clients resume on another worker),
step 3 always (the session keeps no half answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping

import uvicorn

from .errors import api_error, error_body
from .production import _seconds

logger = logging.getLogger("reference_server")

DRAIN_ENV = "WORKSHOP_DRAIN_S"
DEFAULT_DRAIN_S = 8.0
# uvicorn's timeout_graceful_shutdown, after the drain: enough for the streams to send their
# terminal frames and close; above drain_s in case the drain never ran (another server).
SHUTDOWN_MARGIN_S = 5.0
DRAINING_RETRY_AFTER_S = 1  # another worker takes the message at once

RESTARTING = "SERVER_RESTARTING"  # the cancel reason and the stream's error code
DRAINING = "SERVER_DRAINING"
MESSAGES = {
    RESTARTING: "The server answering had to restart before the answer was complete. "
                "Nothing of it was kept: send the message again.",
    DRAINING: "This server is shutting down and takes no new messages: send it again "
              "(another server will answer).",
}


def drain_s_from_env(environ: Mapping[str, str] | None = None) -> float:
    seconds = _seconds(os.environ if environ is None else environ, DRAIN_ENV)
    return DEFAULT_DRAIN_S if seconds is None else seconds


def restarting_frame_data() -> str:
    """The ``data:`` of the terminal frame of a turn handed over: retryable, say so."""
    body = error_body(RESTARTING, MESSAGES[RESTARTING])
    body["error"]["retry"] = "resend"
    return json.dumps(body)


class Drain:
    """The drain of one process's turns (``app.state.drain``)."""

    def __init__(self, turns, drain_s: float = DEFAULT_DRAIN_S) -> None:
        self.turns = turns  # turns.TurnManager
        self.drain_s = drain_s
        self.draining = False
        self._run: asyncio.Task | None = None

    def refuse_new_turn(self) -> None:
        """Raise the 503 a new message gets while draining (before any stream byte)."""
        if self.draining:
            raise api_error(503, DRAINING, MESSAGES[DRAINING],
                            headers={"Retry-After": str(DRAINING_RETRY_AFTER_S)})

    async def run(self, wait: bool = True) -> None:
        """Drain (once; a second call waits for the first). ``wait=False``: hand the running
        turns over at once (nobody can read their rest: the connections are closed already
        and the replay store is this process's own)."""
        self.draining = True
        if self._run is None:
            self._run = asyncio.create_task(self._drain(self.drain_s if wait else 0.0), name="drain")
        await asyncio.shield(self._run)

    async def _drain(self, drain_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        running = self.turns.all_running()
        if running:
            logger.info("draining: %d turn(s) running, waiting up to %.1f s", len(running), drain_s)
        while running and loop.time() < deadline:  # a turn that started just before the flag counts
            waits = [asyncio.create_task(t.finished.wait()) for t in running]
            await asyncio.wait(waits, timeout=deadline - loop.time())
            for wait in waits:
                wait.cancel()
            running = self.turns.all_running()
        if running:
            logger.warning("drain: handing %d turn(s) over (%s)", len(running), RESTARTING)
            # TurnManager._produce ends a turn cancelled for RESTARTING with a rewind and the
            # retryable error frame instead of `cancelled`.
            await asyncio.gather(*(self.turns.cancel(t, RESTARTING) for t in running),
                                 return_exceptions=True)
        self.turns.closing = True  # step 4: streams of turns running elsewhere end


class DrainingServer(uvicorn.Server):
    """uvicorn that drains the app (``app.state.drain``) before it stops listening and waits
    for the open connections. The port stays open meanwhile: a new message gets the 503, which
    the proxy retries elsewhere, rather than a refused connection mid-request."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    async def shutdown(self, sockets=None) -> None:
        try:
            await self.drain.run()
        except Exception:  # never keep the process from stopping
            logger.exception("drain failed")
        await asyncio.sleep(0.2)  # the streams write their terminal frames out
        await super().shutdown(sockets)
