"""Two runs of the same notebook print the same text (timings, ports and ids aside)."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d+(\.\d+)?\s?(ms\b|s\b|%)"), "<duration>"),
]


def printed_text(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output["text"]
                for pattern, replacement in VOLATILE:
                    text = pattern.sub(replacement, text)
                texts.append(text)
    return texts


@pytest.mark.notebook
def test_notebook_00_prints_the_same_text_twice():
    path = ROOT / "solutions" / "00_setup_and_first_stream.ipynb"
    first, second = printed_text(path), printed_text(path)
    assert first == second
    assert "Once upon a time there was a river" in "".join(first)
