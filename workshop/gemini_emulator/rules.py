"""How the emulator decides what to answer: small, readable, deterministic rules.

The emulator reads a Gemini `generateContent` request and returns a `Reply`: optional
thoughts, optional text, optional function call, and a finish reason. The same request
always gets the same reply. The rules, checked in this order:

1. Faults. A trigger in the latest user message such as ``[fault:429]`` (see faults.py).
2. A tool result. When the last content holds ``functionResponse`` parts, answer in text
   that quotes the result: "According to get_weather: Sunny, 21 °C in Paris."
3. A tool call. When tools are declared and the latest user message names one of them
   (a keyword of the function's name other than a verb: ``get_weather`` -> "weather"),
   call it, with arguments taken from the message: a place after "in"/"for"/"at" for
   ``city``/``location``-like string parameters, the first number for numeric ones, an
   enum value the message mentions, a quoted string otherwise. If the message also says
   "explain" or "step by step", a short text comes first and the call follows it in the
   same turn (text and a function call in one response).
   ``toolConfig.functionCallingConfig.mode`` (either spelling) changes this as it does on the
   real API: ``ANY`` always calls a function (one of ``allowedFunctionNames`` when listed; the
   one the message names, else the first, preferring one not just answered, arguments filled
   from its schema), also right after a tool result; ``NONE`` never calls one.
4. Plain text, by the first matching rule: a greeting; "count to N" / "count from A to B";
   "capital of X"; simple arithmetic "A + B"; "in N words" (N words about streaming);
   "story"/"poem" about a subject; otherwise an answer that quotes the question.
5. Thoughts. When the request sets ``generationConfig.thinkingConfig.includeThoughts``
   (either spelling), two short thought paragraphs come before everything else. A thinking
   model (models.py) that was not asked for them still counts their tokens.
6. Structured output. With ``responseMimeType: application/json`` the text answer is JSON:
   an instance of ``responseJsonSchema`` / ``responseSchema`` when one is given (values
   taken from the message as for tool arguments), else ``{"answer": <text>}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, find_fault

# Verbs that do not identify a tool: get_weather is about "weather", not "get".
_TOOL_VERBS = {
    "get", "set", "list", "fetch", "find", "lookup", "look", "up", "search", "query",
    "read", "call", "run", "do", "make", "check", "compute", "calculate", "current", "tool",
}
_RESULT_KEYS = {"result", "output", "return_value", "content"}
_PLACE_PARAMS = {"city", "location", "place", "country", "town", "region", "destination"}
_PLACE_RE = re.compile(r"\b(?:in|for|at|of|to|near)\s+((?:[A-Z][\w'-]*)(?:\s+[A-Z][\w'-]*)*)")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED_RE = re.compile(r"[\"“']([^\"”']+)[\"”']")

CAPITALS = {
    "australia": "Canberra", "brazil": "Brasília", "canada": "Ottawa", "egypt": "Cairo",
    "france": "Paris", "germany": "Berlin", "india": "New Delhi", "italy": "Rome",
    "japan": "Tokyo", "kenya": "Nairobi", "mexico": "Mexico City", "spain": "Madrid",
}

_STREAMING_WORDS = (
    "Server-Sent Events let a server push a stream of small messages over one HTTP "
    "response, so a reader sees the answer grow word by word instead of waiting for the "
    "whole of it. Each message is a few lines of text ended by a blank line, which makes "
    "the format easy to parse, easy to proxy and easy to resume after a dropped connection."
).split()


@dataclass
class FunctionCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    """What the model says in one response. Also the unit a test can script."""

    text: str = ""
    thoughts: list[str] = field(default_factory=list)
    function_call: FunctionCall | None = None
    finish_reason: str = "STOP"
    fault: Fault | None = None
    thinking_tokens: int = 0  # thinking the model did without sending thoughts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        call = data.get("function_call")
        fault = data.get("fault")
        return cls(
            text=data.get("text", ""),
            thoughts=list(data.get("thoughts", [])),
            function_call=FunctionCall(call["name"], dict(call.get("args", {}))) if call else None,
            finish_reason=data.get("finish_reason", "STOP"),
            fault=Fault.parse(fault) if isinstance(fault, str) else None,
        )


def count_tokens(text: str) -> int:
    """About four characters a token, like the real tokenizer on English."""
    return (len(text) + 3) // 4 if text else 0


def _get(d: dict[str, Any] | None, *names: str, default: Any = None) -> Any:
    """Read a key in either spelling: the real API accepts camelCase and snake_case."""
    for name in names:
        if d and name in d:
            return d[name]
    return default


def latest_user_text(request: dict[str, Any]) -> str:
    """Text of the last user content that holds text (function responses skipped)."""
    for content in reversed(request.get("contents") or []):
        if content.get("role", "user") != "user":
            continue
        texts = [p["text"] for p in content.get("parts", []) if "text" in p and not p.get("thought")]
        if texts:
            return "\n".join(texts)
    return ""


def wants_thoughts(request: dict[str, Any]) -> bool:
    config = _get(request, "generationConfig", "generation_config", default={}) or {}
    thinking = _get(config, "thinkingConfig", "thinking_config", default={}) or {}
    return bool(_get(thinking, "includeThoughts", "include_thoughts", default=False))


def _calling_config(request: dict[str, Any]) -> dict[str, Any]:
    tool_config = _get(request, "toolConfig", "tool_config", default={}) or {}
    return _get(tool_config, "functionCallingConfig", "function_calling_config", default={}) or {}


def wants_streamed_arguments(request: dict[str, Any]) -> bool:
    calling = _calling_config(request)
    return bool(_get(calling, "streamFunctionCallArguments", "stream_function_call_arguments"))


def calling_mode(request: dict[str, Any]) -> str:
    """AUTO (the default), ANY, NONE or VALIDATED; the enum may arrive as its proto number."""
    mode = _get(_calling_config(request), "mode", default="AUTO") or "AUTO"
    return {0: "AUTO", 1: "AUTO", 2: "ANY", 3: "NONE", 4: "VALIDATED"}.get(mode, str(mode).upper())


def declared_functions(request: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for tool in request.get("tools") or []:
        found.extend(_get(tool, "functionDeclarations", "function_declarations", default=[]) or [])
    return found


def _schema(declaration: dict[str, Any]) -> dict[str, Any]:
    return (
        _get(declaration, "parametersJsonSchema", "parameters_json_schema", "parameters", default={})
        or {}
    )


def _tool_keywords(name: str) -> set[str]:
    # getWeather and get_weather both mean "weather": split camelCase before lowering.
    words = {w.lower() for w in re.split(r"[_\W]+|(?<=[a-z0-9])(?=[A-Z])", name) if w}
    return (words - _TOOL_VERBS) or words


def _mentions(text: str, keyword: str) -> bool:
    return re.search(rf"\b{re.escape(keyword)}", text, re.IGNORECASE) is not None


def _extract_argument(name: str, schema: dict[str, Any], text: str) -> Any:
    kind = str(schema.get("type", "string")).lower()
    if schema.get("enum"):
        for value in schema["enum"]:
            if _mentions(text, str(value)):
                return value
        return schema["enum"][0]
    if kind in ("integer", "number"):
        match = _NUMBER_RE.search(text)
        if match is None:
            return None
        number = float(match.group())
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return _mentions(text, name.replace("_", " "))
    if name.lower() in _PLACE_PARAMS or "location" in name.lower():
        match = _PLACE_RE.search(text)
        if match:
            return match.group(1)
    quoted = _QUOTED_RE.search(text)
    if quoted:
        return quoted.group(1)
    match = _PLACE_RE.search(text)
    return match.group(1) if match else None


def _callable_functions(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The declared functions the model may call: with mode ANY or VALIDATED, only those in
    allowedFunctionNames when it is given."""
    declared = declared_functions(request)
    allowed = _get(_calling_config(request), "allowedFunctionNames", "allowed_function_names")
    if allowed and calling_mode(request) in ("ANY", "VALIDATED"):
        return [d for d in declared if d.get("name") in allowed]
    return declared


def match_tool(request: dict[str, Any], text: str) -> FunctionCall | None:
    """The first callable function whose keywords the user's message mentions."""
    for declaration in _callable_functions(request):
        name = declaration.get("name", "")
        if not any(_mentions(text, word) for word in _tool_keywords(name)):
            continue
        schema = _schema(declaration)
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        args = {}
        for param, param_schema in properties.items():
            value = _extract_argument(param, param_schema or {}, text)
            if value is not None:
                args[param] = value
            elif param in required:
                args[param] = "unknown"
        return FunctionCall(name, args)
    return None


def forced_call(request: dict[str, Any], text: str,
                answered: frozenset[str] = frozenset()) -> FunctionCall | None:
    """Mode ANY: the real API always calls a function, even when the message names none (what
    pydantic-ai's output tool, LangChain's ``method="function_calling"`` and LiteLLM's
    ``tool_choice="required"`` rely on). Prefers a function not in ``answered``, so a turn after
    a tool result moves on (pydantic-ai's final_result after get_weather)."""
    if calling_mode(request) != "ANY":
        return None
    functions = _callable_functions(request)
    fresh = [d for d in functions if d.get("name") not in answered] or functions
    if not fresh:
        return None
    mentioned = match_tool({"tools": [{"functionDeclarations": fresh}]}, text)
    if mentioned:
        return mentioned
    schema = _schema(fresh[0])
    return FunctionCall(fresh[0].get("name", ""), _instance(schema, text, schema) if schema else {})


def _describe_result(name: str, response: Any) -> str:
    # The one key clients wrap a plain result in: google-genai/ADK "result", LangChain "output",
    # pydantic-ai "return_value", LiteLLM "content".
    if isinstance(response, dict) and len(response) == 1 and set(response) <= _RESULT_KEYS:
        response = next(iter(response.values()))
    if isinstance(response, dict) and "error" in response:
        return f"The {name} tool failed: {response['error']}."
    if isinstance(response, dict):
        facts = ", ".join(f"{k} is {v}" for k, v in response.items())
        return f"According to {name}: {facts}."
    text = str(response).rstrip(".")
    return f"According to {name}: {text}."


def _answer_tool_results(parts: list[dict[str, Any]]) -> str:
    answers = []
    for part in parts:
        response = _get(part, "functionResponse", "function_response")
        if response:
            answers.append(_describe_result(response.get("name", "the tool"), response.get("response")))
    return " ".join(answers)


def _count(text: str) -> str | None:
    match = re.search(r"count (?:from (-?\d+) )?to (-?\d+)", text, re.IGNORECASE)
    if not match:
        return None
    start, stop = int(match.group(1) or 1), int(match.group(2))
    stop = max(min(stop, start + 999), start)
    return ", ".join(str(n) for n in range(start, stop + 1)) + "."


def _capital(text: str) -> str | None:
    match = re.search(r"capital of ([A-Za-z ]+)", text, re.IGNORECASE)
    if not match:
        return None
    country = match.group(1).strip().rstrip("?").strip()
    capital = CAPITALS.get(country.lower())
    if capital is None:
        return f"I do not know the capital of {country} in offline mode."
    return f"The capital of {country.title()} is {capital}."


def _arithmetic(text: str) -> str | None:
    match = re.search(r"(-?\d+)\s*([-+*x×/])\s*(-?\d+)", text)
    if not match:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    if op == "/" and b == 0:
        return "Dividing by zero has no answer."
    value = {"+": a + b, "-": a - b, "*": a * b, "x": a * b, "×": a * b}.get(op)
    if value is None:
        value = a / b
    return f"{a} {op} {b} = {value}."


def _n_words(text: str) -> str | None:
    match = re.search(r"(\d+)\s+words", text, re.IGNORECASE)
    if not match:
        return None
    n = max(1, min(int(match.group(1)), 2000))
    words = [_STREAMING_WORDS[i % len(_STREAMING_WORDS)] for i in range(n)]
    return " ".join(words).rstrip(".,") + "."


def _story(text: str) -> str | None:
    match = re.search(r"\b(story|poem)\b(?: about ([^.?!]+))?", text, re.IGNORECASE)
    if not match:
        return None
    subject = (match.group(2) or "a stream of events").strip()
    if match.group(1).lower() == "poem":
        return (
            f"A poem about {subject}:\nWord by word the answer grows,\n"
            "each little frame a step it shows;\na blank line ends it, on it flows."
        )
    return (
        f"Once upon a time there was {subject}. Every morning it sent one small message "
        "down a long HTTP response, and every reader saw the words appear as they were "
        "written. When the last message arrived, the stream closed, and everyone knew the "
        "story was complete."
    )


def text_answer(text: str) -> str:
    stripped = text.strip()
    if re.match(r"^(hello|hi|hey|good (morning|afternoon|evening))\b", stripped, re.IGNORECASE):
        return (
            "Hello! I am the workshop's offline Gemini emulator, answering as your agent's "
            "model would. Ask me about the weather, ask me to count to ten, or ask anything else."
        )
    for rule in (_count, _capital, _arithmetic, _n_words, _story):
        answer = rule(stripped)
        if answer:
            return answer
    question = " ".join(stripped.split()) or "nothing"
    return (
        f'You asked: "{question}". This answer comes from the offline Gemini emulator, '
        "streamed in chunks as the real API sends them, so you can watch Server-Sent Events "
        "arrive. Set GOOGLE_API_KEY to hear from the real model."
    )


def _thoughts(text: str, call: FunctionCall | None) -> list[str]:
    question = " ".join(text.split())[:80]
    plan = (
        f"I should call {call.name} with {json.dumps(call.args, ensure_ascii=False)} and then answer."
        if call
        else "I can answer this directly, briefly and clearly."
    )
    return [
        f'**Reading the request**\n\nThe user wrote: "{question}". Let me work out what they need.',
        f"**Planning the answer**\n\n{plan}",
    ]


def _json_config(request: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(JSON wanted, its schema): responseJsonSchema (JSON Schema) or responseSchema
    (the API's OpenAPI subset), either spelling."""
    config = _get(request, "generationConfig", "generation_config", default={}) or {}
    mime = _get(config, "responseMimeType", "response_mime_type", default="") or ""
    schema = _get(config, "responseJsonSchema", "response_json_schema", "responseSchema",
                  "response_schema")
    return mime == "application/json" or schema is not None, schema


def _instance(schema: dict[str, Any], text: str, root: dict[str, Any], name: str = "value",
              depth: int = 0) -> Any:
    """A value valid against ``schema``, filled from the message where a rule applies."""
    if "$ref" in schema and depth < 8:
        target: Any = root
        for key in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return _instance(target, text, root, name, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if str(o.get("type", "")).lower() != "null"]
        if options:
            return _instance(options[0], text, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower()
    if schema.get("enum"):
        return _extract_argument(name, schema, text)
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _instance(sub or {}, text, root, key, depth + 1)
                for key, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or schema.get("min_items") or 1))
        items = schema.get("items") or {}
        return [_instance(items, text, root, name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        value = _extract_argument(name, {"type": kind}, text)
        value = 1 if value is None else value
        low, high = schema.get("minimum"), schema.get("maximum")
        value = max(value, low) if low is not None else value
        return min(value, high) if high is not None else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    value = _extract_argument(name, {"type": "string"}, text)
    return value if isinstance(value, str) else f"{name} from the offline emulator"


def structured_answer(request: dict[str, Any], text: str, answer: str) -> str | None:
    """The JSON text a structured-output request gets, or None when it asked for none."""
    wanted, schema = _json_config(request)
    if not wanted:
        return None
    if not schema:
        return json.dumps({"answer": answer}, ensure_ascii=False)
    return json.dumps(_instance(schema, text, schema), ensure_ascii=False)


def hidden_thinking_tokens(request: dict[str, Any], call: FunctionCall | None) -> int:
    """What the thoughts the rules would write cost, when the model thinks unseen."""
    return sum(count_tokens(t) for t in _thoughts(latest_user_text(request), call))


def plan_reply(request: dict[str, Any]) -> Reply:
    """Apply the rules of this module's docstring to one request."""
    contents = request.get("contents") or []
    last_parts = contents[-1].get("parts", []) if contents else []
    text = latest_user_text(request)
    fault = find_fault(text) if not any(
        _get(p, "functionResponse", "function_response") for p in last_parts
    ) else None

    call = None
    responses = [_get(p, "functionResponse", "function_response") for p in last_parts]
    if any(responses):
        answered = frozenset(r.get("name", "") for r in responses if r)
        call = forced_call(request, text, answered)
        answer = "" if call else _answer_tool_results(last_parts)
    else:
        mode = calling_mode(request)
        call = None if mode == "NONE" else match_tool(request, text) or forced_call(request, text)
        if call and re.search(r"\bexplain\b|step by step", text, re.IGNORECASE):
            answer = f"Let me look that up with {call.name}."
        elif call:
            answer = ""
        else:
            answer = text_answer(text.replace(fault.trigger, "") if fault else text)
    if not call:
        answer = structured_answer(request, text, answer) or answer

    reply = Reply(text=answer, function_call=call, fault=fault)
    if fault and fault.finish_reason:
        reply.finish_reason = fault.finish_reason
    if wants_thoughts(request):
        reply.thoughts = _thoughts(text, call)
    return reply
