// POST /api/chat read by the real AI SDK client: the `ai` package's DefaultChatTransport (what
// useChat sends and parses) and readUIMessageStream (how useChat builds the message).
// Run by tests/test_js_clients.py, which starts the reference server against the emulator and
// sets CHAT_API (the /api/chat URL), CHAT_TOKEN and EMULATOR_URL.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AbstractChat, DefaultChatTransport, readUIMessageStream } from "ai";

const { CHAT_API, CHAT_TOKEN, EMULATOR_URL } = process.env;
if (!CHAT_API || !CHAT_TOKEN || !EMULATOR_URL) {
  throw new Error("run through tests/test_js_clients.py (CHAT_API, CHAT_TOKEN, EMULATOR_URL)");
}

const transport = new DefaultChatTransport({
  api: CHAT_API,
  headers: { Authorization: `Bearer ${CHAT_TOKEN}` },
});
let chats = 0;

function userMessage(text) {
  return { id: `m-${Date.now()}`, role: "user", parts: [{ type: "text", text }] };
}

/** Send one message as useChat does; resolve to the stream of UI message chunks. */
function send(text, { chatId = `chat-${process.pid}-${++chats}`, abortSignal } = {}) {
  return transport.sendMessages({
    chatId, messages: [userMessage(text)], trigger: "submit-message",
    messageId: undefined, abortSignal,
  });
}

/** Every snapshot of the assistant message as useChat would render it, and the errors. */
async function read(stream) {
  const snapshots = [];
  const errors = [];
  for await (const message of readUIMessageStream({ stream, onError: (e) => errors.push(e) })) {
    snapshots.push(structuredClone(message));
  }
  return { snapshots, errors, last: snapshots.at(-1) };
}

const textOf = (message) =>
  message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

async function emulator(path, body) {
  const response = await fetch(`${EMULATOR_URL}${path}`, {
    method: body === undefined ? "GET" : "POST",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json();
}

test("text grows chunk by chunk and arrives once", async () => {
  const { snapshots, errors, last } = await read(await send("Count to 12"));
  assert.deepEqual(errors, []);
  const texts = snapshots.map(textOf).filter((t) => t);
  assert.ok(texts.length >= 5, `the text grew in ${texts.length} steps`);
  for (let i = 1; i < texts.length; i++) assert.ok(texts[i].startsWith(texts[i - 1]));
  assert.match(textOf(last), /^1, 2, 3, .*12\.?$/);
  assert.equal(textOf(last).match(/12/g).length, 1, "no text twice (partial vs final)");
  assert.equal(last.parts.filter((p) => p.type === "text").at(-1).state, "done");
});

test("a tool call and its result arrive as one tool part", async () => {
  const { snapshots, errors, last } = await read(
    await send("Explain how you check the weather in Paris"));
  assert.deepEqual(errors, []);
  const tool = last.parts.find((p) => p.type === "tool-get_weather");
  assert.ok(tool, `parts: ${last.parts.map((p) => p.type)}`);
  assert.equal(tool.state, "output-available");
  assert.deepEqual(tool.input, { city: "Paris" });
  assert.equal(tool.output.city, "Paris");
  // the input was shown before the output came: useChat can render "calling get_weather..."
  const states = snapshots.map((m) => m.parts.find((p) => p.type === "tool-get_weather")?.state);
  assert.ok(states.includes("input-available"), `tool states: ${[...new Set(states)]}`);
  // text before the call, the call, text after it: in that order, each once
  const kinds = last.parts.map((p) => p.type);
  assert.deepEqual(kinds, ["text", "tool-get_weather", "text"]);
  assert.match(last.parts[2].text, /Paris/);
});

test("thoughts arrive as a reasoning part, apart from the answer", async () => {
  await emulator("/emulator/script", { thoughts: ["Weighing the greeting."], text: "Hello there, friend." });
  const { errors, last } = await read(await send("Say hello"));
  assert.deepEqual(errors, []);
  assert.deepEqual(last.parts.map((p) => p.type), ["reasoning", "text"]);
  assert.equal(last.parts[0].text, "Weighing the greeting.");
  assert.equal(last.parts[1].text, "Hello there, friend.");
});

test("an error mid-stream reaches the client as an error, after the text so far", async () => {
  const { errors, last } = await read(await send("Count to 10 [fault:error-after=2]"));
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /^MODEL_UNAVAILABLE: /);
  assert.ok(textOf(last).startsWith("1, "), `text before the error: ${textOf(last)}`);
});

test("a second message while a turn runs is refused (409), as on the native endpoint", async () => {
  const chatId = `chat-busy-${process.pid}`;
  const first = await send("Tell me a story about a lighthouse in 60 words", { chatId });
  await assert.rejects(send("Hello", { chatId }), /TURN_IN_PROGRESS/);
  await read(first);
});

test("the chat id keeps the conversation: a second message is a new turn of it", async () => {
  const chatId = `chat-memory-${process.pid}`;
  await read(await send("What is the capital of France?", { chatId }));
  const { errors } = await read(await send("And what did I just ask?", { chatId }));
  assert.deepEqual(errors, []);  // tests/test_js_clients.py checks the model saw both
});

// useChat's state, without React: AbstractChat (what useChat wraps) keeps its messages here.
class PlainChatState {
  constructor() { this.messages = []; this.status = "ready"; this.error = undefined; }
  pushMessage = (message) => { this.messages = this.messages.concat(message); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  };
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor(init) { super({ ...init, state: new PlainChatState() }); }
}

test("regenerate() makes the last answer again, in place of the old one", async () => {
  const chat = new Chat({ id: `chat-regen-${process.pid}`, transport });
  await chat.sendMessage({ text: "Count to 3" });
  await chat.sendMessage({ text: "Count to 5" });
  assert.equal(chat.error, undefined);
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
  const old = chat.messages[3];
  await emulator("/emulator/script", { text: "Five: 1, 2, 3, 4, 5." });
  await chat.regenerate();  // POST /api/chat, trigger "regenerate-message", messages up to "Count to 5"
  assert.equal(chat.error, undefined);
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
  assert.notEqual(chat.messages[3].id, old.id);
  assert.equal(textOf(chat.messages[3]), "Five: 1, 2, 3, 4, 5.");
  assert.equal(textOf(chat.messages[1]), "1, 2, 3.");  // tests/test_js_clients.py checks what the model saw
});

test("abort (useChat's Stop) stops the turn on the server", async () => {
  const before = (await emulator("/emulator/stats")).outcomes.client_closed ?? 0;
  const controller = new AbortController();
  const chatId = `chat-stop-${process.pid}`;
  const stream = await send("Tell me a story about a lighthouse in 300 words",
    { chatId, abortSignal: controller.signal });
  const seen = [];
  try {  // the reading ends, quietly or with an AbortError, as in useChat
    for await (const message of readUIMessageStream({ stream })) {
      seen.push(textOf(message));
      if (seen.length === 3) controller.abort();
    }
  } catch (error) {
    assert.equal(error.name, "AbortError");
  }
  assert.ok(seen.length < 20, `${seen.length} snapshots: the reading stopped at the abort`);
  // the server cancels the turn, which closes the model's stream early
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = (await emulator("/emulator/stats")).outcomes.client_closed ?? 0;
  }
  assert.equal(after, before + 1, "the model request was closed by the server");
  // and the chat has no running turn left: the resume URL answers 204 (once the turn has
  // written its end, just after it closed the model request)
  let status = 0;
  for (let i = 0; i < 50 && status !== 204; i++) {
    const resume = await fetch(`${CHAT_API}/${chatId}/stream`,
      { headers: { Authorization: `Bearer ${CHAT_TOKEN}` } });
    status = resume.status;
    await resume.body?.cancel();
    if (status !== 204) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 204);
  // the next message is taken at once (no 409)
  const { errors } = await read(await send("Hello", { chatId }));
  assert.deepEqual(errors, []);
});

test("without a token: 401 before any stream", async () => {
  const anonymous = new DefaultChatTransport({ api: CHAT_API });
  await assert.rejects(
    anonymous.sendMessages({ chatId: "x", messages: [userMessage("Hi")], trigger: "submit-message" }),
    /UNAUTHENTICATED/);
});
