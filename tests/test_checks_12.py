"""The check cell of notebook 12 (Exercise 12.1, nginx directives for SSE) passes right answers
written in different styles and explains wrong ones, each run through a real nginx as the notebook
runs it. Without nginx these tests skip, except in CI."""

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


@pytest.mark.parametrize("right", [SOLUTION, FULL_BLOCK, DEFAULT_TIMEOUT])
async def test_right_answers_pass(capsys, right):
    await nb12.check_sse_location(right)
    assert "✅" in capsys.readouterr().out


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


@pytest.mark.parametrize(("wrong", "message"), [
    (BUFFERED, "in bulk"),
    (HEADER_TO_BROWSER, "only reaches the browser"),
    (HTTP_1_0, "HTTP/1.0 to the worker"),
    (NO_CONNECTION_CLEARED, "Connection: close"),
    (SHORT_TIMEOUT, "cut the stream after"),
    (GZIP_STREAM, "compressed"),
    (TYPO, "unknown directive \"proxy_bufering\", at the line 'proxy_bufering off;'"),
    (MISSING_SEMICOLON, "nginx refused the configuration"),
    (NO_PROXY_PASS, "never reached the worker"),
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
