"""``make serve``: the reference server (``python -m reference_server``) with the workshop's
backend: the offline Gemini emulator unless a key (or Vertex AI) is set.

The reference server never starts an emulator itself (it is copied into services that talk
to real Gemini); this wrapper runs the setup cell's logic, then the server, in one process."""

from __future__ import annotations

from reference_server.__main__ import main as serve

from .backend import setup


def main() -> None:
    setup()
    serve()


if __name__ == "__main__":
    main()
