"""The check cell of notebook 12 (Exercise 12.1, nginx directives for SSE) passes right answers
written in different styles and explains wrong ones, each run through a real nginx as the notebook
runs it. Without nginx these tests skip, except in CI."""

import asyncio
import fcntl
import json
import os

import pytest

from workshop.checks import CheckFailed, nb12
from workshop.servers.nginx import INSTALL_HINT, nginx_binary


@pytest.fixture(autouse=True)
def _needs_nginx():
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the nginx checks: {INSTALL_HINT}")
        pytest.skip(f"no nginx: {INSTALL_HINT}")


SOLUTION = """
proxy_pass http://reference_server;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_buffering off;
proxy_read_timeout 75s;
"""

# Another style: the template's full block, a longer timeout, gzip off said out loud, and the
# cache off as well; nginx's default proxy_read_timeout (60s) is enough with 15 s pings too.
FULL_BLOCK = """
    proxy_pass http://reference_server;
    proxy_http_version 1.1;
    proxy_set_header Connection '';
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_buffering off;
    proxy_cache off;
    gzip off;
    proxy_read_timeout 1h;
"""

DEFAULT_TIMEOUT = """
proxy_pass http://reference_server;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_buffering off;
"""

# Connection: keep-alive upstream keeps the connection as well as clearing the header does.
KEEP_ALIVE = SOLUTION.replace('Connection ""', 'Connection "keep-alive"')

# The whole block pasted, wrapper and all: nginx accepts a location nested in the check's
# `location /`, and it behaves the same (the exercise asks for the directives alone; harmless).
WHOLE_BLOCK = "location / {\n" + SOLUTION + "}\n"

# A learner's production style: comments, the directives in another order, longer timeouts.
PRODUCTION = "\n".join([
    "# never compress event streams",
    "gzip off;",
    "# pass each frame on immediately, whatever the app sends",
    "proxy_buffering off;",
    "proxy_cache off;",
    "proxy_read_timeout 5m;",
    "proxy_send_timeout 5m;",
    "proxy_set_header Host $host;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_set_header Connection '';",
    "proxy_http_version 1.1;",
    "proxy_pass http://reference_server;",
])

# Computed from the server's ping interval (an f-string in the notebook), in seconds without a unit.
FROM_KEEPALIVE = (SOLUTION.replace("proxy_read_timeout 75s;", f"proxy_read_timeout {int(nb12.KEEPALIVE_S * 6)};")
                  + "chunked_transfer_encoding on;\ngzip off;\n")

RIGHT = [SOLUTION, FULL_BLOCK, DEFAULT_TIMEOUT, KEEP_ALIVE, WHOLE_BLOCK, PRODUCTION, FROM_KEEPALIVE]


async def _verdict(directives: str) -> str:
    try:
        await nb12.check_sse_location(directives)
    except CheckFailed as exc:
        return str(exc)
    return "passed"


@pytest.fixture(scope="module")
def right_verdicts(tmp_path_factory) -> list[str]:
    """Every right answer checked at once (each check keeps a stream silent for about 16 s), and
    once per run: xdist workers share the verdicts through a locked file in the run's temp dir."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "nb12_right_verdicts.json"
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not shared.exists():
            async def all_at_once() -> list[str]:
                return list(await asyncio.gather(*(_verdict(right) for right in RIGHT)))
            shared.write_text(json.dumps(asyncio.run(all_at_once())))
        return json.loads(shared.read_text())


@pytest.mark.parametrize("right", RIGHT)
def test_right_answers_pass(right_verdicts, right):
    assert right_verdicts[RIGHT.index(right)] == "passed"


# nginx's defaults (HTTP/1.0 upstream, buffering on), with only a timeout added.
BUFFERED = "proxy_pass http://reference_server;\nproxy_read_timeout 75s;\n"
HEADER_TO_BROWSER = BUFFERED + "add_header X-Accel-Buffering no;\n"
HTTP_1_0 = SOLUTION.replace("proxy_http_version 1.1;", "").replace('proxy_set_header Connection "";', "")
NO_CONNECTION_CLEARED = SOLUTION.replace('proxy_set_header Connection "";', "")
SHORT_TIMEOUT = SOLUTION.replace("75s", "10s")
GZIP_STREAM = SOLUTION + "gzip on;\ngzip_types text/event-stream;\n"
TYPO = SOLUTION.replace("proxy_buffering off;", "proxy_bufering off;")
MISSING_SEMICOLON = SOLUTION.replace("proxy_buffering off;", "proxy_buffering off")
NO_PROXY_PASS = SOLUTION.replace("proxy_pass http://reference_server;", "")
# Over HTTP/1.1 with Connection cleared, nginx 1.22 passes paced frames on one by one even with
# proxy_buffering on: only the burst to a client that stops reading tells these three apart.
NO_BUFFERING_DIRECTIVE = SOLUTION.replace("proxy_buffering off;\n", "")
ADD_HEADER_ONLY = NO_BUFFERING_DIRECTIVE + "add_header X-Accel-Buffering no;\n"
HEADER_TO_WORKER = NO_BUFFERING_DIRECTIVE + "proxy_set_header X-Accel-Buffering no;\n"
# The WebSocket recipe copied: the worker sees Connection: upgrade.
WEBSOCKET_UPGRADE = SOLUTION.replace('proxy_set_header Connection "";',
                                     'proxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection "upgrade";')


@pytest.mark.parametrize(("wrong", "message"), [
    (BUFFERED, "in bulk"),
    (HEADER_TO_BROWSER, "only reaches the browser"),
    (HTTP_1_0, "HTTP/1.0 to the worker"),
    (NO_CONNECTION_CLEARED, "Connection: close"),
    (SHORT_TIMEOUT, "cut the stream after"),
    (GZIP_STREAM, "compressed"),
    (TYPO, "unknown directive \"proxy_bufering\", at the line 'proxy_bufering off;'"),
    (MISSING_SEMICOLON, "nginx refused the configuration: .* at the line 'proxy_read_timeout 75s;' "
                        r"\(the line before it: 'proxy_buffering off'; a missing ';'"),
    (NO_PROXY_PASS, "never reached the worker"),
    (NO_BUFFERING_DIRECTIVE, "nginx buffered the response"),
    (ADD_HEADER_ONLY, "nginx buffered the response.*add_header X-Accel-Buffering no; only adds"),
    (HEADER_TO_WORKER, "nginx buffered the response.*proxy_set_header X-Accel-Buffering no; sends it"),
    (WEBSOCKET_UPGRADE, "Connection: upgrade.*not a WebSocket upgrade"),
])
async def test_wrong_answers_are_explained(capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb12.check_sse_location(wrong)
    assert "Hint:" in capsys.readouterr().out


async def test_not_a_string_is_explained(capsys):
    with pytest.raises(CheckFailed, match="not a string"):
        await nb12.check_sse_location(["proxy_buffering off;"])


def test_without_nginx_the_check_skips_with_a_message_but_not_under_ci(monkeypatch, capsys):
    monkeypatch.setattr(nb12, "nginx_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    assert nb12.nginx_available() is False
    assert "nginx is not installed" in capsys.readouterr().out
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="CI must run"):
        nb12.nginx_available()
