"""The load test, scaled down for ``make test`` (``make load`` runs 200 streams): concurrent
streaming conversations at realistic pacing, each complete and in order with its ``done``, and
every session in the database holding exactly its turns."""

from __future__ import annotations

import asyncio

from reference_server import Settings, create_app
from reference_server.persistence import session_service_from_url
from workshop.loadtest import LoadReport, percentile, run_load, verify_sessions
from workshop.servers import BackgroundServer

STREAMS = 30
TURNS = 2


def test_the_load_test_uses_the_workshops_one_percentile():
    from workshop.bench.stats import percentile as interpolated

    assert percentile is interpolated  # lessons 09 and 11 report the same statistic
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5 and percentile([7.0], 99) == 7.0


def test_concurrent_streams_complete_in_order_and_sessions_hold_their_turns(emulator, tmp_path):
    emulator.set_pacing(first_token_s=0.3, chunk_s=0.03, words_per_chunk=1)  # as a real model
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    settings = Settings(tokens={"tok-load": "loadtest"}, session_service=session_service_from_url(url))
    with BackgroundServer(create_app(settings)) as server:
        report: LoadReport = asyncio.run(run_load(server.url, "tok-load", streams=STREAMS, turns=TURNS,
                                                  timeout_s=60))
        assert not server.errors
    asyncio.run(verify_sessions(report, session_service_from_url(url)))
    print(report.summary())
    assert report.problems == []
    assert report.completed == STREAMS * TURNS
    assert len(report.first_event_s) == STREAMS * TURNS
    # Every turn streamed partial frames then its final one: "Count to N" is N numbers.
    assert all(turn.frames >= 4 for turn in report.all_turns)
    # Paced at 0.3 s before the first token: no answer can come sooner.
    assert min(report.first_event_s) >= 0.25
    assert report.wall_s < 45
