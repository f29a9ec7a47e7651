"""``python -m reference_server``: the reference server on ``HOST:PORT`` (default
127.0.0.1:8000), with the model google-genai finds in the environment (``GOOGLE_API_KEY``,
Vertex AI settings, ``GOOGLE_GEMINI_BASE_URL``). It never starts an emulator: in the
workshop, ``make serve`` (``python -m workshop.serve``) starts the offline one first."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys

import uvicorn

from .app import Settings, create_app
from .drain import SHUTDOWN_MARGIN_S, DrainingServer

LISTEN_FD_ENV = "WORKSHOP_LISTEN_FD"  # a listening socket inherited from a parent process


def banner(settings: Settings, url: str) -> str:
    """What to paste: the page, and a curl session. Shows a token only if it was generated."""
    # Double quotes so that the $TOKEN placeholder expands in the reader's shell; a generated
    # token is URL-safe base64 and needs no quoting.
    auth = '"Authorization: Bearer ' + (settings.dev_token or "$TOKEN") + '"'
    if settings.dev_token:
        lines = [f"Chat page: {url}/?token={settings.dev_token}",
                 f"Development token (user {settings.tokens[settings.dev_token]!r}; set "
                 f"WORKSHOP_TOKENS=token:user,... to choose your own): {settings.dev_token}"]
    else:
        users = ", ".join(sorted(set(settings.tokens.values())))
        lines = [f"Chat page: {url}/ (paste your token there)",
                 f"Tokens: from WORKSHOP_TOKENS ({len(settings.tokens)}; users: {users}); "
                 "put yours in $TOKEN for the lines below"]
    lines += [
        "Try it:",
        f"  SID=$(curl -s -X POST -H {auth} {url}/api/sessions"
        " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"session_id\"])')",
        f"  curl -N -H {auth} -H 'Content-Type: application/json'"
        f" -d '{{\"text\": \"Count to 10\"}}' {url}/api/sessions/$SID/messages",
    ]
    return "\n".join(lines)


class RedactTokens(logging.Filter):
    """Access-log lines never show a ``token=`` query value (the page accepts ``/?token=``)."""

    _TOKEN = re.compile(r"(token=)[^&\s]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    if not any(os.environ.get(name) for name in
               ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")):
        sys.exit("reference server: no model credentials: set GOOGLE_API_KEY (or Vertex AI "
                 "settings; GOOGLE_GEMINI_BASE_URL for another endpoint)")
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        sys.exit(f"reference server: {exc}")
    app = create_app(settings)
    sockets = None
    if fd := os.environ.get(LISTEN_FD_ENV):  # a parent bound the port for us
        sock = socket.socket(fileno=int(fd))  # family and protocol (TCP: no Nagle) read from the fd
        host, port = sock.getsockname()[:2]
        sockets = [sock]
    # SIGTERM: DrainingServer drains first (settings.drain_s), then uvicorn waits at most
    # this long for the streams to close before it cancels them.
    config = uvicorn.Config(app, host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "info"),
                            timeout_graceful_shutdown=settings.drain_s + SHUTDOWN_MARGIN_S)
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    print(banner(settings, f"http://{shown_host}:{port}"), flush=True)
    DrainingServer(config, app.state.drain).run(sockets=sockets)


if __name__ == "__main__":
    main()
