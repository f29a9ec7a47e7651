// /api/ag-ui (reference_server/ag_ui.py, ag-ui-adk) read by AG-UI's own client: @ag-ui/client's
// HttpAgent, which also verifies the event order. Run by tests/test_ag_ui.py in the AG-UI
// extra's environment (make test-agui), with AGUI_URL and AGUI_TOKEN set.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HttpAgent } from "@ag-ui/client";

const { AGUI_URL, AGUI_TOKEN } = process.env;
if (!AGUI_URL || !AGUI_TOKEN) throw new Error("run through tests/test_ag_ui.py (make test-agui)");

async function run(text, headers = { Authorization: `Bearer ${AGUI_TOKEN}` }) {
  const agent = new HttpAgent({
    url: AGUI_URL, headers, initialMessages: [{ id: "m1", role: "user", content: text }],
  });
  const events = [];
  let error = null;
  try {
    await agent.runAgent({}, { onEvent: ({ event }) => { events.push(event); } });
  } catch (e) {
    error = e;
  }
  return { events, types: events.map((e) => e.type), error, agent };
}

test("a text turn: run started, text message start/content/end, run finished", async () => {
  const { types, events, error, agent } = await run("Count to 5");
  assert.equal(error, null);
  assert.equal(types[0], "RUN_STARTED");
  assert.equal(types.at(-1), "RUN_FINISHED");
  const start = types.indexOf("TEXT_MESSAGE_START");
  const end = types.indexOf("TEXT_MESSAGE_END");
  assert.ok(start > 0 && end > start, types.join(" "));
  const deltas = events.slice(start, end).filter((e) => e.type === "TEXT_MESSAGE_CONTENT");
  assert.ok(deltas.length >= 3, "word by word");
  assert.equal(deltas.map((e) => e.delta).join(""), "1, 2, 3, 4, 5.");
  // the client's own message list holds the answer once
  const answer = agent.messages.filter((m) => m.role === "assistant").map((m) => m.content).join("");
  assert.equal(answer, "1, 2, 3, 4, 5.");
});

test("a tool call: TOOL_CALL_START, ARGS, END, then its RESULT", async () => {
  const { types, events, error } = await run("What's the weather in Paris?");
  assert.equal(error, null);
  const order = ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"]
    .map((t) => types.indexOf(t));
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), types.join(" "));
  const startEvent = events[order[0]];
  assert.equal(startEvent.toolCallName, "get_weather");
  assert.deepEqual(JSON.parse(events[order[1]].delta), { city: "Paris" });
});

test("an error mid-stream is RUN_ERROR, after the text so far, and no RUN_FINISHED", async () => {
  const { types, events } = await run("Count to 10 [fault:error-after=2]");
  assert.equal(types.at(-1), "RUN_ERROR", types.join(" "));
  assert.ok(!types.includes("RUN_FINISHED"));
  const text = events.filter((e) => e.type === "TEXT_MESSAGE_CONTENT").map((e) => e.delta).join("");
  assert.ok(text.startsWith("1, "), text);
});

test("without the token: the run fails (401 before any event)", async () => {
  const { types, error } = await run("Hello", {});
  assert.deepEqual(types, []);
  assert.match(String(error?.message ?? error), /401/);
});
