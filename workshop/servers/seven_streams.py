"""Seven SSE streams opened at once by a real browser page (harness, not product): lesson 12 and
``tests/test_deploy_nginx.py`` show with it that over HTTP/1.1 the seventh stream to one origin
waits for one of the first six to end (a browser opens at most six connections per host), and
over HTTP/2 it does not.

    app = serve_in_background(seven_streams_app())          # GET /page, GET /slow?i=N
    with Nginx([address], http2=True) as proxy:
        result = in_browser({"h2": f"{proxy.url}/page"})   # {"h2": {"firsts": [...], "protocols": [...]}}

``in_browser`` drives Debian's chromium with Playwright's sync API in a thread of its own (the
sync API refuses to run inside a running event loop: a Jupyter kernel's, or an async test's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse

STREAM_S = 3.0  # each stream stays open this long
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PAGE = """<!doctype html><meta charset="utf-8"><title>seven streams</title><script>
async function sevenStreams() {
  const t0 = performance.now();
  const one = async (i) => {
    const response = await fetch(`/slow?i=${i}`);
    const reader = response.body.getReader();
    await reader.read();  // the first frame
    const first = performance.now() - t0;
    while (!(await reader.read()).done) {}
    return first;
  };
  const firsts = await Promise.all([0, 1, 2, 3, 4, 5, 6].map(one));
  const protocols = performance.getEntriesByType("resource").map((e) => e.nextHopProtocol);
  return {firsts, protocols};
}
</script>"""


def find_chromium() -> str | None:
    """Debian's chromium (or $CHROMIUM_PATH)."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser", "/usr/bin/chromium"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def browser_missing() -> str | None:
    """Why ``in_browser`` cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -r requirements.txt)"
    if find_chromium() is None:
        return "no Chromium found (apt-get install chromium; or set $CHROMIUM_PATH)"
    return None


def seven_streams_app(stream_s: float = STREAM_S) -> FastAPI:
    """``GET /page``: the page; ``GET /slow?i=N``: one frame, ``stream_s`` of silence, the end."""
    app = FastAPI()

    @app.get("/page")
    async def page():
        return HTMLResponse(PAGE)

    @app.get("/slow")
    async def slow(i: int):
        async def frames():
            yield f"data: stream {i} open\n\n"
            await asyncio.sleep(stream_s)
            yield "event: done\ndata: {}\n\n"
        return StreamingResponse(frames(), media_type="text/event-stream")

    return app


def in_browser(pages: dict[str, str]) -> dict[str, dict]:
    """Each page of ``pages`` (name -> URL of ``/page``) opened in a fresh browser context, its
    seven streams started at once: name -> ``{"firsts": ms of each first frame, "protocols"}``."""
    results: dict[str, dict] = {}
    failure: list[BaseException] = []

    def run() -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
                try:
                    for name, url in pages.items():
                        context = browser.new_context(ignore_https_errors=True)  # a throwaway certificate
                        page = context.new_page()
                        page.goto(url)
                        results[name] = page.evaluate("sevenStreams()")
                        context.close()
                finally:
                    browser.close()
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="seven-streams-browser")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results
