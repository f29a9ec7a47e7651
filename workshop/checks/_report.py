"""How a check cell reports: one line for success, a reason and a hint for failure."""

from __future__ import annotations

import io


class CheckFailed(AssertionError):
    """A check found a wrong answer. The message says what is wrong and hints at a fix."""


def passed(message: str) -> None:
    print(f"✅ {message}")


def fail(what: str, hint: str) -> None:
    """Print and raise: the printed lines stay readable above the short traceback."""
    print(f"❌ {what}\n   Hint: {hint}")
    raise CheckFailed(f"{what} Hint: {hint}")


class CountingStdout(io.StringIO):
    """stdout that also counts the writes holding text, to tell streaming from one print."""

    def __init__(self) -> None:
        super().__init__()
        self.text_writes = 0

    def write(self, s: str) -> int:
        self.text_writes += bool(s.strip())
        return super().write(s)
