"""Helper package of the ADK SSE Streaming Workshop.

- ``workshop.setup()``: the one call of every notebook's setup cell (backend.py).
- ``workshop.gemini_emulator``: the offline, wire-faithful Gemini API emulator.
- ``workshop.exercises``: generates notebooks/ from solutions/.
- ``workshop.checks``: the functions behind the exercises' check cells.
"""

from .backend import DEFAULT_MODEL, VERIFIED_VERSIONS, Backend, model_name, setup

__all__ = ["DEFAULT_MODEL", "VERIFIED_VERSIONS", "Backend", "model_name", "setup"]
