"""The check cells of notebook 07 pass right answers and explain typical wrong ones."""

import pytest
from google.adk.features import FeatureName, is_feature_enabled
from google.adk.features import _feature_registry as registry

from workshop.checks import CheckFailed, nb07

MODEL = "gemini-3.5-flash"


@pytest.fixture(autouse=True)
def feature_is_restored():
    yield
    assert FeatureName.PROGRESSIVE_SSE_STREAMING not in registry._FEATURE_OVERRIDES
    assert is_feature_enabled(FeatureName.PROGRESSIVE_SSE_STREAMING)


def texts(event):
    parts = event.content.parts if event.content and event.content.parts else []
    return ("".join(p.text for p in parts if p.text and p.thought),
            "".join(p.text for p in parts if p.text and not p.thought))


def solution(view, event):
    thoughts, answer = texts(event)
    if event.id not in view:
        if not (thoughts or answer):
            return
        view[event.id] = {"thoughts": "", "answer": ""}
    entry = view[event.id]
    if event.partial:
        entry["thoughts"] += thoughts
        entry["answer"] += answer
    else:
        entry["thoughts"], entry["answer"] = thoughts, answer


def appends_the_aggregate(view, event):
    thoughts, answer = texts(event)
    entry = view.setdefault(event.id, {"thoughts": "", "answer": ""})
    entry["thoughts"] += thoughts
    entry["answer"] += answer


def replaces_on_every_event(view, event):
    thoughts, answer = texts(event)
    if thoughts or answer:
        view[event.id] = {"thoughts": thoughts, "answer": answer}


def reads_parts_0_only(view, event):
    if not (event.content and event.content.parts):
        return
    part = event.content.parts[0]
    if not part.text:
        return
    entry = view.setdefault(event.id, {"thoughts": "", "answer": ""})
    key = "thoughts" if part.thought else "answer"
    if event.partial:
        entry[key] += part.text
    else:
        entry[key] = part.text


def mixes_thoughts_into_the_answer(view, event):
    parts = event.content.parts if event.content and event.content.parts else []
    answer = "".join(p.text for p in parts if p.text)
    if not answer and event.id not in view:
        return
    entry = view.setdefault(event.id, {"thoughts": "", "answer": ""})
    entry["answer"] = entry["answer"] + answer if event.partial else answer


def keyed_by_invocation(view, event):
    thoughts, answer = texts(event)
    if not (thoughts or answer):
        return
    entry = view.setdefault(event.invocation_id, {"thoughts": "", "answer": ""})
    if event.partial:
        entry["thoughts"] += thoughts
        entry["answer"] += answer
    else:
        entry["thoughts"], entry["answer"] = thoughts, answer


def returns_a_new_view(view, event):
    new = dict(view)
    solution(new, event)
    return new


def assumes_every_part_is_text(view, event):
    parts = event.content.parts if event.content and event.content.parts else []
    thoughts = "".join(p.text for p in parts if p.thought)
    answer = "".join(p.text for p in parts if not p.thought)  # a call part's text is None
    if thoughts or answer:
        entry = view.setdefault(event.id, {"thoughts": "", "answer": ""})
        if event.partial:
            entry["thoughts"] += thoughts
            entry["answer"] += answer
        else:
            entry["thoughts"], entry["answer"] = thoughts, answer


def per_part_style(view, event):
    """Another right answer: a loop over the parts, the entry made lazily, replace on the aggregate."""
    pieces = {"thoughts": "", "answer": ""}
    for part in (event.content.parts or []) if event.content else []:
        if part.text:
            pieces["thoughts" if part.thought else "answer"] += part.text
    if not any(pieces.values()) and event.id not in view:
        return
    entry = view.setdefault(event.id, {"thoughts": "", "answer": ""})
    for key, text in pieces.items():
        entry[key] = entry[key] + text if event.partial else text


@pytest.mark.parametrize("right", [solution, per_part_style], ids=["solution", "per-part"])
async def test_right_display_filter_passes(emulator, capsys, right):
    await nb07.check_update_view(right, model=MODEL)
    assert "✅" in capsys.readouterr().out


def shows_partial_events_only(view, event):
    if not event.partial:
        return  # the aggregate repeats what streamed: skipping it looks harmless
    thoughts, answer = texts(event)
    if thoughts or answer:
        entry = view.setdefault(event.id, {"thoughts": "", "answer": ""})
        entry["thoughts"] += thoughts
        entry["answer"] += answer


@pytest.mark.parametrize(("wrong", "message"), [
    (appends_the_aggregate, "twice"),
    (replaces_on_every_event, "Append"),
    (reads_parts_0_only, "text is missing"),
    (mixes_thoughts_into_the_answer, "holds thoughts text"),
    (keyed_by_invocation, "no entry for its id"),
    (returns_a_new_view, "returned a new dict"),
    (assumes_every_part_is_text, "raised TypeError"),
    (shows_partial_events_only, "Never skip non-partial events"),
], ids=["appends-aggregate", "replaces-partials", "parts-0", "mixes-thoughts", "keyed-by-invocation",
        "returns-new-view", "every-part-is-text", "partials-only"])
async def test_wrong_display_filters_are_explained(emulator, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb07.check_update_view(wrong, model=MODEL)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_display_filter_raises_not_implemented(emulator):
    def stub(view, event):
        raise NotImplementedError("Exercise 7.1: fold one event into the view, updating by event id")

    with pytest.raises(NotImplementedError):
        await nb07.check_update_view(stub, model=MODEL)


RIGHT = [
    (True, ("thought",)), (True, ("call",)), (False, ("thought", "call")), (False, ("response",)),
    (True, ("thought",)), (True, ("text",)), (False, ("thought", "text")),
]


LOOSE = [(True, "thought")] + [[partial, list(kinds)] for partial, kinds in RIGHT[1:]]  # lists, a bare kind


@pytest.mark.parametrize("right", [RIGHT, LOOSE], ids=["tuples", "lists-and-a-bare-kind"])
async def test_right_prediction_passes(emulator, capsys, right):
    await nb07.check_prediction(lambda: right, model=MODEL)
    assert "✅ All 7 rows right" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (RIGHT[:2] + RIGHT[3:], "one non-partial event that holds all its parts"),
    (RIGHT[:3] + [(True, ("response",))] + RIGHT[4:], "Function responses are never partial"),
    (RIGHT[:1] + RIGHT[2:], "first arrives in a partial event"),
    (RIGHT[:2] + [(False, ("call",))] + RIGHT[3:], "thoughts included"),
    (RIGHT[:4] + RIGHT[5:], "thinks before each response"),
    (RIGHT[:4], "stops after 4 rows"),
    (RIGHT + [(False, ("text",))], "more row"),
])
async def test_wrong_predictions_are_explained(emulator, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb07.check_prediction(lambda: wrong, model=MODEL)
    out = capsys.readouterr().out
    assert "The run produced:" in out and "Hint:" in out


async def test_a_prediction_of_the_wrong_shape_is_explained(emulator):
    with pytest.raises(CheckFailed, match="list of \\(partial, kinds\\) pairs"):
        await nb07.check_prediction(lambda: ["thought", "text"], model=MODEL)


async def test_online_a_different_sequence_is_reported_not_failed(emulator, capsys):
    await nb07.check_prediction(lambda: RIGHT[:4], model=MODEL, offline=False)
    assert "not checked strictly online" in capsys.readouterr().out


async def test_unfinished_prediction_raises_not_implemented(emulator):
    def stub():
        raise NotImplementedError("Exercise 7.2: write the rows you expect")

    with pytest.raises(NotImplementedError):
        await nb07.check_prediction(stub, model=MODEL)


def _cases(test) -> int:
    return next(len(mark.args[1]) for mark in test.pytestmark if mark.name == "parametrize")


def test_each_exercise_holds_five_mistakes_and_two_right_answers():
    """The issue-12 floor: a check is tested with at least five distinct wrong answers and at
    least two right ones written in different styles."""
    for right, wrong in [(test_right_display_filter_passes, test_wrong_display_filters_are_explained),
                         (test_right_prediction_passes, test_wrong_predictions_are_explained)]:
        assert _cases(right) >= 2 and _cases(wrong) >= 5, (right.__name__, wrong.__name__)
