"""Machinery the lessons use but do not teach, kept out of the learner's way (and tested).

- ``runconfig_table``: lesson 01's table of RunConfig fields, made from the installed
  ``RunConfig.model_fields`` and the docstrings under its attributes.
- ``drop_stale_client_reports``: lesson 02's housekeeping filter for asyncio's report of a
  google-genai client closed after its event loop (each ``runner.run()`` call leaves one).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import logging
import re
from typing import Any

__all__ = ["StaleClientReports", "attribute_docstrings", "drop_stale_client_reports", "runconfig_table"]


# -- lesson 01: the RunConfig table ---------------------------------------------------------------

def attribute_docstrings(cls: type) -> dict[str, str]:
    """The docstring written under each field in the class body (how ADK documents most fields)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _type_name(annotation: Any) -> str:
    """`Optional[list[Modality]]` rather than `typing.Optional[list[google.genai.types.Modality]]`."""
    return annotation.__name__ if isinstance(annotation, type) else re.sub(r"\b(?:\w+\.)+", "", str(annotation))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def runconfig_table(fields: list[str], seed_defaults: dict[str, Any], config_class: type | None = None) -> str:
    """A Markdown table of these RunConfig fields: type, real default, the seed's claimed default
    (checked), and the first sentence of the field's description."""
    if config_class is None:
        from google.adk.agents.run_config import RunConfig as config_class
    docstrings = attribute_docstrings(config_class)
    rows = ["| field | type | default | the seed's default | description (first sentence) |",
            "|---|---|---|---|---|"]
    for name in fields:
        field = config_class.model_fields[name]
        default = field.get_default(call_default_factory=True)
        shown = f"`{default}`" + (f" (from `{field.default_factory.__name__}()`)" if field.default_factory else "")
        if name in seed_defaults:
            seed = seed_defaults[name]
            seed_cell = f"`{seed}` " + ("✓" if default is seed or default == seed else "✗ wrong")
        else:
            seed_cell = "(not listed)"
        description = field.description or docstrings.get(name, "")
        first = re.split(r"(?<=\.)\s+(?=[A-Z])", description)[0] if description else ""
        rows.append(f"| `{name}` | `{_cell(_type_name(field.annotation))}` | {shown} | {seed_cell} | {_cell(first)} |")
    return "\n".join(rows)


# -- lesson 02: asyncio's reports of clients closed after their loop ------------------------------

class StaleClientReports(logging.Filter):
    """Drops asyncio's report of a genai client closed after its event loop ended; keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        stale = "AsyncClient.aclose()" in record.getMessage() and "Event loop is closed" in str(record.exc_info)
        if stale:
            self.dropped.append(record)
        return not stale


def drop_stale_client_reports() -> StaleClientReports:
    """Install the filter on the ``asyncio`` logger (once per process) and return it."""
    logger = logging.getLogger("asyncio")
    for existing in logger.filters:
        if isinstance(existing, StaleClientReports):
            return existing
    stale = StaleClientReports()
    logger.addFilter(stale)
    return stale
