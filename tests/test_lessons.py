"""The lessons' machinery (workshop/lessons.py): lesson 01's RunConfig table, lesson 02's filter."""

import gc
import logging

from google.adk.agents.run_config import RunConfig, StreamingMode

from workshop.lessons import (
    StaleClientReports,
    attribute_docstrings,
    drop_stale_client_reports,
    runconfig_table,
)

FIELDS = ["streaming_mode", "response_modalities", "max_llm_calls", "service_tier"]
SEED = {"streaming_mode": None, "response_modalities": None, "max_llm_calls": None}


def test_table_shows_the_installed_defaults_and_checks_the_seeds():
    rows = runconfig_table(FIELDS, SEED).splitlines()
    assert len(rows) == 2 + len(FIELDS)
    by_field = {row.split("|")[1].strip(" `"): row for row in rows[2:]}
    assert f"`{StreamingMode.NONE}`" in by_field["streaming_mode"] and "✗ wrong" in by_field["streaming_mode"]
    assert "`None` ✓" in by_field["response_modalities"]
    default = RunConfig.model_fields["max_llm_calls"].get_default(call_default_factory=True)
    assert f"`{default}` (from `" in by_field["max_llm_calls"] and "✗ wrong" in by_field["max_llm_calls"]
    assert "(not listed)" in by_field["service_tier"]


def test_table_keeps_every_row_five_columns_wide():
    """A '|' inside a type or a description is escaped, or the Markdown table breaks."""
    for row in runconfig_table(list(RunConfig.model_fields), {}).splitlines():
        assert row.replace("\\|", "").count("|") == 6, row


def test_descriptions_come_from_the_docstrings_under_the_fields():
    docs = attribute_docstrings(RunConfig)
    assert "max_llm_calls" in docs and "\n" not in docs["max_llm_calls"]
    row = next(r for r in runconfig_table(["max_llm_calls"], {}).splitlines() if "max_llm_calls" in r)
    assert docs["max_llm_calls"].split(". ")[0] in row


def _asyncio_record(message: str, error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, exc_info)


def test_filter_drops_only_the_stale_client_report():
    stale = StaleClientReports()
    report = _asyncio_record("Task exception was never retrieved\nfuture: <Task coro=<AsyncClient.aclose() ...>>",
                             RuntimeError("Event loop is closed"))
    other = _asyncio_record("Task exception was never retrieved\nfuture: <Task coro=<main()>>",
                            RuntimeError("Event loop is closed"))
    unrelated = _asyncio_record("AsyncClient.aclose() was slow", None)
    assert [stale.filter(r) for r in (report, other, unrelated)] == [False, True, True]
    assert stale.dropped == [report]


def test_filter_is_installed_once_on_the_asyncio_logger():
    logger = logging.getLogger("asyncio")
    try:
        first = drop_stale_client_reports()
        assert drop_stale_client_reports() is first and first in logger.filters
    finally:
        for installed in [f for f in logger.filters if isinstance(f, StaleClientReports)]:
            logger.removeFilter(installed)


def test_filter_drops_what_sync_runs_leave_behind(emulator, capsys):
    """Each runner.run() builds a client on its own loop; a later run cannot close it."""
    from google.adk.agents import Agent
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService
    from google.genai import types

    stale = drop_stale_client_reports()
    try:
        runner = Runner(app_name="t", agent=Agent(name="a", model="gemini-3.5-flash"),
                        session_service=InMemorySessionService(), auto_create_session=True)
        message = types.Content(role="user", parts=[types.Part(text="Hello")])
        for turn in range(3):
            for _ in runner.run(user_id="u", session_id=f"s{turn}", new_message=message,
                                run_config=RunConfig(streaming_mode=StreamingMode.SSE)):
                pass
            gc.collect()
        assert stale.dropped, "no report dropped: has google-genai stopped leaking the client?"
        assert "Event loop is closed" not in capsys.readouterr().err
    finally:
        logging.getLogger("asyncio").removeFilter(stale)
