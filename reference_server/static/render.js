// render.js: draws one turn of the conversation from the ADK events the server streams.
//
// Each SSE frame's data is one ADK Event as camelCase JSON. The rules (the same as
// workshop/display.py and exercise 6.1 of notebook 06):
//  1. Update in place by Event id. The partial events of one model response and the
//     aggregated event after them share one `id`. A partial event's text is appended to the
//     message with that id; the non-partial event holds the whole response and REPLACES it.
//     Appending it instead would print the answer twice.
//  2. Thoughts apart: a part with `thought: true` is reasoning, shown in a "Thinking" box
//     whose summary says how long the model has been thinking, and its latest step.
//  3. Text per part, not per event: join every text part of an event.
//  4. Tool calls as they happen: a `functionCall` part shows the name and arguments; the
//     `functionResponse` with the same call id fills in the result.
//  5. Errors: an event's `errorCode`/`errorMessage`, and the server's `event: error` frame.
// Model text is drawn as a safe subset of Markdown (markdown.js): elements and text nodes,
// never innerHTML, so model output cannot add markup to the page.
import { renderMarkdown } from "./markdown.js";

// Create an element with a class and optional text.
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The thought text and the answer text of one event (rule 3).
export function eventText(event) {
  const parts = event.content?.parts ?? [];
  let thoughts = "";
  let answer = "";
  for (const part of parts) {
    if (typeof part.text !== "string" || part.text === "") continue;
    if (part.thought) thoughts += part.text;
    else answer += part.text;
  }
  return { thoughts, answer };
}

const pretty = (value) => JSON.stringify(value ?? {}, null, 1).replace(/\n\s*/g, " ");

// The user's text of a persisted event of theirs (GET .../events), or null for any other event.
export function userMessage(event) {
  if (event.author !== "user") return null;
  return (event.content?.parts ?? []).map((part) => part.text ?? "").join("");
}

// Gemini starts each step of its thinking with a **bold title**: the latest one says where it is.
function latestStep(thoughts) {
  const titles = [...thoughts.matchAll(/\*\*([^*\n]+)\*\*/g)];
  return titles.length ? titles[titles.length - 1][1].trim() : "";
}

const seconds = (ms) => `${Math.floor(ms / 1000)} s`;

export class Turn {
  // `container` is the transcript; the turn appends its own <article> to it. A turn drawn
  // again from the session's history (`restored`) has no clock and no event count.
  constructor(container, userText, { restored = false } = {}) {
    this.root = el("article", "turn");
    this.root.dataset.state = "streaming";
    this.root.setAttribute("aria-busy", "true"); // screen readers wait for the finished turn
    this.root.append(el("p", "bubble user", userText));
    this.body = el("div", "bubble model");
    this.status = el("p", "turn-status");
    this.root.append(this.body, this.status);
    container.append(this.root);
    this.messages = new Map(); // Event id -> { node, thinking, thoughtNode, answerNode, thoughts, text }
    this.calls = new Map(); // function call id -> { node, argsNode, resultNode }
    this.events = 0;
    this.usage = null;
    this.modelError = null; // an event's errorCode, not yet shown
    this.parser = null; // the current stream's SSEParser
    this.lastEventId = ""; // the last `id:` seen on any of the turn's connections: a resume starts there
    this.resumes = 0; // how many times a dropped connection was resumed
    this.turnId = null; // the server's X-Turn-Id: a resume asks for this turn only
    this.restored = restored;
    this.notice = null; // a line that replaces the progress line, e.g. while reconnecting
    // Until the first answer text, the status counts the seconds (the model may think for a
    // while before it says anything), and the thinking box shows the latest step.
    this.startedAt = performance.now();
    this.phase = "waiting"; // waiting -> thinking (thoughts arrived) -> answering
    this.clock = null;
    if (!restored) {
      this.clock = setInterval(() => this.#tick(), 1000);
      this.#tick();
    }
  }

  // Fold one ADK event (already parsed from JSON) into the page.
  apply(event) {
    if (this.root.dataset.state !== "streaming") return; // stopped: later events are not shown
    this.events += 1;
    this.notice = null;
    if (event.author === "user") return;
    this.#applyText(event);
    for (const part of event.content?.parts ?? []) {
      if (part.functionCall) this.#applyCall(part.functionCall, Boolean(event.partial));
      if (part.functionResponse) this.#applyResponse(part.functionResponse);
    }
    // ADK's own error (a model error, or a finish reason such as MAX_TOKENS). The reference
    // server follows it with `event: error`, whose user-facing message is shown instead;
    // the raw one goes under "Details".
    if (event.errorCode) this.modelError = { code: event.errorCode, message: event.errorMessage ?? "" };
    if (!event.partial && event.usageMetadata) this.usage = event.usageMetadata;
    if (this.phase === "answering") this.status.textContent = "Streaming…";
    else this.#tick();
  }

  // Once a second while the turn streams: the progress line until the first answer text,
  // and the clock of a thinking box still thinking.
  #tick() {
    if (this.restored || this.root.dataset.state !== "streaming") return;
    for (const message of this.messages.values()) if (message.thoughtFor === null) this.#summarize(message);
    if (this.phase === "answering") return;
    const elapsed = seconds(performance.now() - this.startedAt);
    this.status.dataset.phase = this.phase;
    const progress = this.phase === "thinking" ? `Thinking… ${elapsed}` : `Waiting for the model… ${elapsed}`;
    this.status.textContent = this.notice ?? progress;
  }

  // The model answers or acts: the thoughts before it are over.
  #answering() {
    for (const message of this.messages.values()) this.#thought(message);
    if (this.phase === "answering") return;
    this.phase = "answering";
    delete this.status.dataset.phase;
  }

  // A message's thinking is over: how long it took.
  #thought(message) {
    if (message.thoughtFor !== null) return;
    message.thoughtFor = performance.now() - message.startedAt;
    this.#summarize(message);
  }

  #stopClock() {
    if (this.clock !== null) clearInterval(this.clock);
    this.clock = null;
  }

  // The thinking box's one line: what the model is doing, or how long it thought.
  #summarize(message) {
    if (!message.thoughts) return;
    const step = latestStep(message.thoughts);
    let text;
    if (this.restored) text = "Thoughts";
    else if (message.thoughtFor !== null) text = `Thought for ${seconds(message.thoughtFor)}`;
    else if (this.root.dataset.state === "streaming") {
      text = `Thinking… ${seconds(performance.now() - message.startedAt)}${step ? ` · ${step}` : ""}`;
    } else text = "Thoughts"; // stopped while thinking
    message.summary.textContent = text;
  }

  #applyText(event) {
    const { thoughts, answer } = eventText(event);
    let message = this.messages.get(event.id);
    if (!message) {
      if (!thoughts && !answer) return; // a call, a response or an empty event: no message
      message = this.#newMessage(event.id);
    }
    const before = { thoughts: message.thoughts, text: message.text };
    if (event.partial) {
      message.thoughts += thoughts;
      message.text += answer;
    } else {
      // The aggregate holds the whole response: replace, never append.
      message.thoughts = thoughts;
      message.text = answer;
      message.node.dataset.complete = "true";
    }
    if (message.text) this.#answering();
    else if (message.node.dataset.complete) this.#thought(message);
    else if (message.thoughts && this.phase === "waiting") this.phase = "thinking";
    if (message.thoughts !== before.thoughts) renderMarkdown(message.thoughtNode, message.thoughts);
    message.thinking.hidden = message.thoughts === "";
    if (message.text !== before.text) renderMarkdown(message.answerNode, message.text);
    this.#summarize(message);
  }

  #newMessage(id) {
    const node = el("div", "message");
    node.dataset.eventId = id;
    const thinking = el("details", "thinking");
    thinking.hidden = true;
    const summary = el("summary", "", "Thinking");
    thinking.append(summary);
    const thoughtNode = el("div", "thought-text");
    thinking.append(thoughtNode);
    const answerNode = el("div", "answer");
    node.append(thinking, answerNode);
    this.body.append(node);
    const message = { node, thinking, summary, thoughtNode, answerNode, thoughts: "", text: "",
      // The first message thinks from the start of the turn; a later one (after a tool's
      // result) from its first piece.
      startedAt: this.messages.size ? performance.now() : this.startedAt, thoughtFor: null };
    this.messages.set(id, message);
    return message;
  }

  #applyCall(call, partial) {
    const key = call.id ?? `call-${this.calls.size}`;
    let tool = this.calls.get(key);
    if (!tool) {
      const node = el("div", "tool-call");
      node.dataset.callId = key;
      node.dataset.status = "calling";
      const nameNode = el("span", "tool-name");
      const argsNode = el("code", "tool-args");
      const resultNode = el("div", "tool-result", "running…");
      const head = el("div", "tool-head");
      head.append(el("span", "tool-badge", "tool"), nameNode, argsNode);
      node.append(head, resultNode);
      this.body.append(node);
      tool = { node, nameNode, argsNode, resultNode, args: {} };
      this.calls.set(key, tool);
    }
    if (call.name) tool.nameNode.textContent = call.name;
    this.#answering(); // the model is acting: no longer just thinking
    if (partial && call.partialArgs) {
      // A streamed call still arriving (Vertex AI): show the arguments growing; run nothing.
      for (const arg of call.partialArgs) {
        const name = (arg.jsonPath ?? "$").replace(/^\$\./, "");
        if (arg.stringValue !== undefined) tool.args[name] = (tool.args[name] ?? "") + arg.stringValue;
        else if (arg.numberValue !== undefined) tool.args[name] = arg.numberValue;
        else if (arg.boolValue !== undefined) tool.args[name] = arg.boolValue;
      }
    } else if (call.args) {
      tool.args = call.args;
    }
    tool.argsNode.textContent = pretty(tool.args);
  }

  #applyResponse(response) {
    const tool = this.calls.get(response.id) ??
      [...this.calls.values()].find((t) => t.nameNode.textContent === response.name && t.node.dataset.status === "calling");
    if (!tool) return;
    tool.node.dataset.status = "done";
    tool.resultNode.textContent = `→ ${pretty(response.response)}`;
  }

  // An error to show: the server's `event: error`, a failed request, or an event's errorCode.
  showError(code, message) {
    const box = el("div", "error");
    box.setAttribute("role", "alert");
    // ": " between the two, in the text itself: a screen reader reads the alert's text as one
    // string, and two adjacent elements would run the code into the message's first word.
    box.append(el("strong", "error-code", code), ": ", el("span", "error-message", message));
    if (this.modelError && this.modelError.code !== code) {
      const details = el("details", "error-details");
      details.append(el("summary", "", "Details"), el("code", "", `${this.modelError.code}: ${this.modelError.message}`));
      box.append(details);
    }
    this.modelError = null;
    this.body.append(box);
  }

  // The server handed the turn over (it restarted mid-answer and kept nothing of it): the
  // message is sent again, so the answer so far goes, and the next stream starts afresh.
  restart(text) {
    this.body.replaceChildren();
    this.messages.clear();
    this.calls.clear();
    this.events = 0;
    this.usage = null;
    this.modelError = null;
    this.lastEventId = "";
    this.turnId = null;
    this.phase = "waiting";
    this.note(text);
  }

  // A line of status while the turn streams (e.g. reconnecting).
  note(text) {
    this.notice = text;
    if (this.root.dataset.state === "streaming") this.status.textContent = text;
  }

  // A turn drawn from the session's history is over: how it ended, from its last event.
  finishRestored() {
    if (this.modelError?.code === "INVOCATION_ABORTED") { // ADK's mark of a stopped run
      this.modelError = null;
      this.finish("stopped");
    } else if (this.modelError) {
      // The stream told its user-facing code then; the history keeps ADK's raw one: Details.
      this.showError("FAILED", "This answer did not finish.");
      this.finish("error");
    } else {
      this.finish(this.messages.size || this.calls.size ? "done" : "error", this.messages.size ? "" : "no answer");
    }
  }

  // The turn is over: state is "done", "stopped" or "error".
  finish(state, note = "") {
    if (this.root.dataset.state !== "streaming") return; // the first ending wins
    if (this.modelError) this.showError(this.modelError.code, this.modelError.message); // not reported otherwise
    this.#stopClock();
    this.root.dataset.state = state;
    delete this.status.dataset.phase;
    this.root.setAttribute("aria-busy", "false");
    for (const message of this.messages.values()) {
      if (state === "stopped" && !message.node.dataset.complete) message.node.dataset.stopped = "true";
    }
    const tokens = this.usage?.totalTokenCount;
    const label = { done: "Done", stopped: "Stopped", error: "Failed" }[state];
    const resumed = this.resumes ? `resumed after ${this.resumes} dropped connection${this.resumes > 1 ? "s" : ""}` : "";
    const events = this.restored ? "" : `${this.events} events`;
    const facts = [events, tokens ? `${tokens} tokens` : "", resumed, note].filter(Boolean);
    this.status.textContent = [label, ...facts].join(" · ");
    for (const message of this.messages.values()) this.#summarize(message);
  }
}
