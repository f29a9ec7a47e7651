"""The display filter (workshop.display): each tricky case of notebook 07, on synthetic and real events."""

import pytest
from google.adk.agents import Agent
from google.adk.events import Event
from google.genai import types

from workshop.checks import nb07
from workshop.display import TurnView, event_table, event_text, part_kinds, turn_shape


def event(event_id, partial, *parts, author="assistant", **fields):
    return Event(id=event_id, author=author, invocation_id="i", partial=partial,
                 content=types.Content(role="model", parts=list(parts)) if parts else None, **fields)


def text(value, thought=False):
    return types.Part(text=value, thought=thought or None)


def call(name=None, args=None, call_id="c1", partial_args=None, will_continue=None):
    return types.Part(function_call=types.FunctionCall(
        id=call_id, name=name, args=args, partial_args=partial_args, will_continue=will_continue))


def fold(events):
    view = TurnView()
    for e in events:
        view.apply(e)
    return view


def test_partials_append_and_the_aggregate_with_the_same_id_replaces():
    view = fold([event("r1", True, text("Hel")), event("r1", True, text("lo")),
                 event("r1", False, text("Hello"))])
    assert [m.text for m in view.messages] == ["Hello"]
    assert view.messages[0].complete


def test_the_aggregate_wins_when_it_differs_from_the_partials():
    # e.g. a partial event a client never saw: the aggregate is the truth
    view = fold([event("r1", True, text("Hel")), event("r1", False, text("Hello"))])
    assert view.answer == "Hello"


def test_thoughts_are_kept_apart_from_the_answer():
    view = fold([event("r1", True, text("Let me think. ", thought=True)),
                 event("r1", True, text("Paris.")),
                 event("r1", False, text("Let me think. ", thought=True), text("Paris."))])
    assert view.thoughts == "Let me think. "
    assert view.answer == "Paris."


def test_an_event_with_several_text_parts_shows_all_of_them():
    view = fold([event("r1", True, text("wor"), text("ld")), event("r1", True, text("!"))])
    assert view.answer == "world!"
    assert event_text(event("x", True, text("a", thought=True), text("b"), text("c"))) == ("a", "bc")


def test_text_then_call_then_text_shows_each_response_once():
    events = [
        event("r1", True, text("Let me ")), event("r1", True, text("check.")),
        event("r1", True, call("get_weather", {"city": "Paris"})),
        event("r1", False, text("Let me check."), call("get_weather", {"city": "Paris"})),  # not final
        Event(id="r2", author="assistant", invocation_id="i", content=types.Content(role="user", parts=[
            types.Part(function_response=types.FunctionResponse(id="c1", name="get_weather",
                                                                response={"forecast": "sunny"}))])),
        event("r3", True, text("It is ")), event("r3", True, text("sunny.")),
        event("r3", False, text("It is sunny.")),
    ]
    assert not events[3].is_final_response()
    view = fold(events)
    assert [m.text for m in view.messages] == ["Let me check.", "It is sunny."]
    assert view.answer == "Let me check.\n\nIt is sunny."
    [tool] = view.tool_calls
    assert (tool.name, tool.args, tool.status, tool.result) == (
        "get_weather", {"city": "Paris"}, "done", {"forecast": "sunny"})
    assert [type(item).__name__ for item in view.items] == ["Message", "ToolCall", "Message"]


def test_a_partial_call_is_shown_but_not_marked_called():
    view = TurnView()
    view.apply(event("r1", True, call("get_weather", {"city": "Paris"})))
    assert view.tool_calls[0].status == "streaming"
    view.apply(event("r1", False, call("get_weather", {"city": "Paris"})))
    assert view.tool_calls[0].status == "called"


def test_streamed_arguments_grow_in_the_preview():
    view = fold([
        event("r1", True, call("get_weather", will_continue=True)),
        event("r1", True, call(partial_args=[types.PartialArg(json_path="$.city", string_value="San ",
                                                             will_continue=True)])),
        event("r1", True, call(partial_args=[types.PartialArg(json_path="$.city", string_value="Jose")])),
        event("r1", True, call(partial_args=[types.PartialArg(json_path="$.days", number_value=3)])),
    ])
    [tool] = view.tool_calls
    assert (tool.name, tool.args, tool.status) == ("get_weather", {"city": "San Jose", "days": 3}, "streaming")


def test_usage_comes_from_the_final_event_and_errors_are_kept():
    usage = types.GenerateContentResponseUsageMetadata(total_token_count=42)
    view = fold([event("r1", True, text("Hi"), usage_metadata=types.GenerateContentResponseUsageMetadata(
        total_token_count=1)), event("r1", False, text("Hi"), usage_metadata=usage)])
    assert view.usage.total_token_count == 42
    view.apply(Event(author="assistant", invocation_id="i", error_code="MAX_TOKENS",
                     error_message="cut short"))
    assert view.errors == ["MAX_TOKENS: cut short"]


def test_user_events_and_empty_events_show_nothing():
    view = TurnView()
    assert not view.apply(event("u", None, text("Hello"), author="user"))
    assert not view.apply(event("e", True, text("")))
    assert not view.apply(event("n", None))
    assert view.items == []


def test_apply_reports_whether_anything_visible_changed():
    view = TurnView()
    assert view.apply(event("r1", True, text("Hi")))
    assert not view.apply(event("r1", False, text("Hi")))  # the aggregate repeats what is shown


def test_part_kinds_and_turn_shape():
    e = event("r1", False, text("t", thought=True), text("a"), text(""), call("f", {}))
    assert part_kinds(e) == ("thought", "text", "call")
    assert part_kinds(e, empty=True) == ("thought", "text", "empty", "call")
    events = [event("r1", True, text("a")), event("r1", True, text("b")), event("r1", True, text("")),
              event("r1", False, text("ab"), text(""))]
    assert turn_shape(events) == [(True, ("text",)), (False, ("text",))]


def test_event_table_collapses_identical_neighbours_side_by_side():
    events = [event("r1", True, text("a")), event("r1", True, text("b")), event("r1", False, text("ab"))]
    table = event_table({"ON": events, "OFF": events[:1]})
    lines = table.splitlines()
    assert lines[0].startswith("ON (3 events)") and "│ OFF (1 events)" in lines[0]
    assert lines[2].split()[:3] == ["2×", "True", "text"]
    assert lines[3].split()[:3] == ["1", "False", "text"]


@pytest.mark.parametrize("progressive", [True, False])
async def test_real_turns_show_each_piece_once(emulator, progressive):
    thinker = Agent(name="a", model="gemini-3.5-flash", generate_content_config=nb07.THINKING)
    events = await nb07.run_turn(thinker, "What is the capital of France?", progressive=progressive)
    view = fold(events)
    assert view.answer == "The capital of France is Paris."
    assert view.thoughts.startswith("**Reading the request**")
    weather = Agent(name="w", model="gemini-3.5-flash", tools=[nb07.get_weather])
    view = fold(await nb07.run_turn(weather, "Explain how you check the weather in Paris",
                                    progressive=progressive))
    assert view.messages[0].text == "Let me look that up with get_weather."
    assert view.tool_calls[0].status == "done"
    assert view.answer.count("Let me look that up") == 1
