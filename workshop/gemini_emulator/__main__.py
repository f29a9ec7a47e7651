"""Run the emulator standalone: python -m workshop.gemini_emulator --host 127.0.0.1 --port 8089"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from . import default_pacing
from .server import EmulatorState, serve


def main(argv: list[str] | None = None) -> None:
    pacing = default_pacing()
    parser = argparse.ArgumentParser(prog="python -m workshop.gemini_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--first-token-delay", type=float, default=pacing.first_token_s,
                        help="seconds before the first chunk (default %(default)s)")
    parser.add_argument("--chunk-delay", type=float, default=pacing.chunk_s,
                        help="seconds between chunks (default %(default)s)")
    parser.add_argument("--chunk-chars", type=int, default=pacing.chunk_chars,
                        help="about this many characters a chunk (default %(default)s)")
    parser.add_argument("--words-per-chunk", type=int, default=pacing.words_per_chunk,
                        help="> 0: word-sized chunks instead (default %(default)s)")
    args = parser.parse_args(argv)
    pacing.first_token_s, pacing.chunk_s = args.first_token_delay, args.chunk_delay
    pacing.words_per_chunk, pacing.chunk_chars = args.words_per_chunk, args.chunk_chars

    async def run() -> None:
        server = await serve(EmulatorState(pacing), args.host, args.port)
        url = f"http://{args.host}:{server.sockets[0].getsockname()[1]}"
        print(f"Gemini emulator listening on {url}", flush=True)
        print(f"  export GOOGLE_GEMINI_BASE_URL={url} GOOGLE_API_KEY=emulator", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
