"""The check cell of notebook 13 passes right mappings and explains typical wrong ones; the
mappings' chunks are read by the AI SDK's client (node) where it is installed."""

from __future__ import annotations

import pytest

from workshop import ui_messages
from workshop.checks import CheckFailed, nb13

MODEL = "gemini-3.5-flash"
_turns: list = []


@pytest.fixture
async def turns(emulator):
    """The four recorded turns, recorded once for the module (the data does not change)."""
    if not _turns:
        _turns.extend(await nb13.recorded_turns(MODEL))
    return _turns


def texts(event):
    parts = (event.get("content") or {}).get("parts") or []
    return ("".join(p["text"] for p in parts if p.get("text") and p.get("thought")),
            "".join(p["text"] for p in parts if p.get("text") and not p.get("thought")))


def make_mapping(*, whole_again=False, skip_final=False, thoughts_as_text=False,
                 no_start=False, no_output=False, no_end=False):
    """A mapping with one deliberate mistake (or none)."""
    def to_ui_chunks(events):
        chunks, shown, open_block, blocks = [{"type": "start"}], {}, None, 0

        def close():
            nonlocal open_block
            if open_block and not no_end:
                chunks.append({"type": f"{open_block[0]}-end", "id": open_block[2]})
            open_block = None

        def delta(kind, event_id, text, partial):
            nonlocal open_block, blocks
            before = shown.get((event_id, kind), "")
            if partial or whole_again:
                new = text
            elif skip_final:
                new = ""
            else:
                new = text[len(before):] if text.startswith(before) else ""
            if not new:
                return
            shown[(event_id, kind)] = before + new
            if open_block is None or open_block[:2] != (kind, event_id):
                close()
                blocks += 1
                open_block = (kind, event_id, f"b{blocks}")
                if not no_start:
                    chunks.append({"type": f"{kind}-start", "id": open_block[2]})
            chunks.append({"type": f"{kind}-delta", "id": open_block[2], "delta": new})

        for event in events:
            if open_block and open_block[1] != event["id"]:
                close()
            thought, answer = texts(event)
            if thoughts_as_text:
                answer, thought = thought + answer, ""
            delta("reasoning", event["id"], thought, event.get("partial"))
            delta("text", event["id"], answer, event.get("partial"))
            for part in (event.get("content") or {}).get("parts") or []:
                if "functionCall" in part and not event.get("partial"):
                    close()
                    call = part["functionCall"]
                    chunks.append({"type": "tool-input-start", "toolCallId": call["id"],
                                   "toolName": call["name"]})
                    chunks.append({"type": "tool-input-available", "toolCallId": call["id"],
                                   "toolName": call["name"], "input": call.get("args", {})})
                elif "functionResponse" in part and not no_output:
                    close()
                    result = part["functionResponse"]
                    chunks.append({"type": "tool-output-available", "toolCallId": result["id"],
                                   "output": result["response"]})
        close()
        return chunks + [{"type": "finish"}]
    return to_ui_chunks


def the_reference(events):
    return nb13.reference_chunks(events)


def test_the_reference_mapping_passes(turns, capsys):
    nb13.judge(the_reference, turns)
    out = capsys.readouterr().out
    assert "✅" in out and "4 turns" in out
    if ui_messages.ai_sdk_available():
        assert "the ai package (node)" in out


def test_another_right_mapping_passes(turns, capsys):
    nb13.judge(make_mapping(), turns)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("mistake,expected", [
    ({"whole_again": True}, "twice"),
    ({"skip_final": True}, "arrives whole"),
    ({"thoughts_as_text": True}, "thoughts ended up in the answer"),
    ({"no_start": True}, "could not read your stream"),
    ({"no_output": True}, "state 'input-available'"),
    ({"no_end": True}, "still 'streaming'"),
])
def test_wrong_mappings_are_explained(turns, capsys, mistake, expected):
    with pytest.raises(CheckFailed):
        nb13.judge(make_mapping(**mistake), turns)
    out = capsys.readouterr().out
    assert "❌" in out and "Hint:" in out
    assert expected in out, out


def test_a_crash_and_a_wrong_type_are_explained(turns, capsys):
    def crashes(events):
        return [{"type": "tool-input-start", **e["content"]["parts"][0]["functionCall"]}
                for e in events]  # KeyError: most parts are text

    with pytest.raises(CheckFailed):
        nb13.judge(crashes, turns)
    assert "raised" in capsys.readouterr().out
    with pytest.raises(CheckFailed):
        nb13.judge(lambda events: "data: [DONE]", turns)
    assert "not a list of dicts" in capsys.readouterr().out


def test_an_unfinished_exercise_passes_through(turns):
    def stub(events):
        raise NotImplementedError("Exercise 13.1: map ADK events to UI message chunks")

    with pytest.raises(NotImplementedError):
        nb13.judge(stub, turns)


def test_the_python_reader_agrees_with_the_real_client(turns):
    """read_in_python (the fallback without node) reads the reference chunks as the ai
    package does."""
    if not ui_messages.ai_sdk_available():
        pytest.skip("node or tests/js/node_modules missing")
    for _label, events in turns:
        chunks = nb13.reference_chunks(events)
        real = ui_messages.read_with_ai_sdk(chunks)
        assert nb13._shape(ui_messages.read_in_python(chunks)["message"]) == nb13._shape(real["message"])
