// chat.js: the page. Connect with a token, open the session (the last one again after a
// reload, drawn from its history), send messages, render the streamed events, stop a turn.
// The pieces it wires together:
//   api.js      - the HTTP calls (fetch, Authorization header)
//   sse.js      - the SSE parser over the response body
//   render.js   - one turn of the transcript, updated in place by Event id
//   markdown.js - model text drawn as a safe subset of Markdown
import { ApiError, ChatClient } from "./api.js";
import { readSSE, StreamCutError } from "./sse.js";
import { Turn, userMessage } from "./render.js";

const TOKEN_KEY = "workshop-token";
const SESSION_KEY = "workshop-session"; // the conversation a reload opens again
const $ = (id) => document.getElementById(id);
const ui = {
  tokenForm: $("token-form"),
  tokenInput: $("token"),
  connection: $("connection"),
  newChat: $("new-chat"),
  transcript: $("transcript"),
  composer: $("composer"),
  message: $("message"),
  send: $("send"),
  stop: $("stop"),
};

let client = null;
let sessionId = null;
let running = null; // the turn in progress: { controller, turn }

// The token: from ?token=... (then removed from the address bar, so it does not linger in
// the history or a screenshot), else from the last visit.
function initialToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl !== null) {
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url);
    return fromUrl;
  }
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

function setConnection(text, ok) {
  ui.connection.textContent = text;
  ui.connection.dataset.ok = String(ok);
}

function setBusy(busy) {
  ui.send.disabled = busy || !sessionId || !client;
  ui.message.disabled = !sessionId || !client;
  ui.stop.disabled = !busy;
  ui.newChat.disabled = busy || !client;
}

const REFUSED = "Token rejected (401) · enter a valid token and press Connect";

// The server refused the token (at connect, or mid-conversation: revoked, rotated): back to
// "enter a token". The session id stays remembered: a valid token of the same user opens
// the conversation again.
function tokenRefused() {
  stop();
  client = null;
  localStorage.removeItem(TOKEN_KEY);
  setConnection(REFUSED, false);
  setBusy(false);
  ui.tokenInput.select();
  ui.tokenInput.focus();
}

// Check the token by opening a session with it: the remembered one (its conversation drawn
// again), or a new one. `fresh` (New chat) always starts a new, empty one.
async function connect(token, { fresh = false } = {}) {
  stop();
  ui.transcript.replaceChildren();
  client = new ChatClient(token);
  sessionId = null;
  setBusy(false);
  setConnection("Connecting…", false);
  let history = null;
  try {
    const saved = fresh ? null : localStorage.getItem(SESSION_KEY);
    if (saved) {
      try {
        history = await client.history(saved);
        sessionId = saved;
      } catch (err) {
        // 404: expired, deleted, or another user's (a different token): start a new one.
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
    }
    sessionId ??= await client.createSession();
    localStorage.setItem(TOKEN_KEY, token); // fine for a development token; the page never uses innerHTML
    localStorage.setItem(SESSION_KEY, sessionId);
    setConnection(`Connected · session ${sessionId.slice(0, 8)}…`, true);
    ui.connection.dataset.session = sessionId; // the whole id, for tools and tests
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return tokenRefused();
    client = null;
    setConnection(`Cannot connect: ${err.message}`, false);
    setBusy(false);
    ui.tokenInput.focus();
    return;
  }
  setBusy(false);
  ui.message.focus();
  if (history) restore(history);
}

// Draw the session's history again, one turn per user message. A turn still running (the
// page was reloaded mid-answer) is read again from its first frame (Last-Event-ID 0): the
// server replays what it sent so far, then the rest live.
function restore({ events, running }) {
  const turns = [];
  for (const event of events) {
    const text = userMessage(event);
    if (text !== null) turns.push({ text, events: [] });
    else if (turns.length) turns[turns.length - 1].events.push(event);
  }
  const live = running ? turns.pop() ?? { text: "" } : null;
  // The transcript is a live region: a screen reader would read the whole history out. It is
  // quiet while the history is drawn (and a moment after: the browser tells assistive
  // technology about changes asynchronously), then announces new turns again.
  ui.transcript.setAttribute("aria-live", "off");
  for (const { text, events: answer } of turns) {
    const turn = new Turn(ui.transcript, text, { restored: true });
    for (const event of answer) turn.apply(event);
    turn.finishRestored();
  }
  setTimeout(() => ui.transcript.setAttribute("aria-live", "polite"), 1000);
  follow.stick();
  if (live) {
    run(new Turn(ui.transcript, live.text), (signal) => client.resume(sessionId, "0", null, signal),
      (signal) => client.sendMessage(sessionId, live.text, signal));
  }
}

// Read one stream to its end. A resumed stream (Last-Event-ID) is read the same way, into the
// same turn.
async function consume(response, turn) {
  for await (const frame of readSSE(response, { onParser: (parser) => (turn.parser = parser) })) {
    if (frame.id) turn.lastEventId = frame.id; // where a resume starts, across connections
    if (frame.type === "message") {
      turn.apply(JSON.parse(frame.data));
    } else if (frame.type === "done") {
      turn.finish("done");
      return;
    } else if (frame.type === "error") {
      const { error } = JSON.parse(frame.data);
      if (error?.retry === "resend") throw new ResendError(error.code, error.message ?? "");
      turn.showError(error?.code ?? "ERROR", error?.message ?? "");
      turn.finish("error");
      return;
    } else if (frame.type === "cancelled") {
      turn.finish("stopped"); // the turn was stopped on the server (Stop here or elsewhere)
      return;
    } // other event types: ignored, so the server can add some without breaking the page
  }
  // The body ended at a frame boundary but without a terminal frame: cut there.
  throw new StreamCutError("The stream ended before the server said it was done.");
}

// A dropped connection (a network error, or a body cut short) is resumed where it broke:
// GET .../stream with the last id seen, waiting longer before each attempt. The server keeps
// the turn running for its grace period (30 s by default) and replays what was missed, so
// nothing is lost or shown twice, and the model is not asked again.
const RESUME_WAITS_MS = [250, 500, 1000, 2000, 4000];

// A resume refused 429 TOO_MANY_STREAMS is retried too: the server may not have seen yet that
// the dropped connection is gone, and still count its stream against the user's limit.
function isDrop(err, signal) {
  return !signal.aborted && (err instanceof StreamCutError || err instanceof TypeError ||
    (err instanceof ApiError && err.code === "TOO_MANY_STREAMS"));
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

async function consumeResuming(response, turn, signal) {
  turn.turnId = response.headers.get("X-Turn-Id"); // resume this turn, never a newer one
  let attempt = 0;
  for (;;) {
    try {
      await consume(response, turn);
      return;
    } catch (err) {
      if (!isDrop(err, signal) || attempt === RESUME_WAITS_MS.length) throw err;
    }
    for (;;) {
      turn.note(`Connection lost · resuming after frame ${turn.lastEventId || 0}…`);
      await sleep(RESUME_WAITS_MS[attempt++], signal);
      try {
        response = await client.resume(sessionId, turn.lastEventId, turn.turnId, signal);
        turn.resumes += 1;
        break;
      } catch (err) {
        if (!isDrop(err, signal) || attempt === RESUME_WAITS_MS.length) throw err;
      }
    }
  }
}

// A server that restarts mid-answer hands the turn over: the stream ends with an error whose
// `retry` is "resend" (the server kept nothing of the answer), and a server shutting down
// refuses a new message with 503 SERVER_DRAINING. Either way the same message is sent again
// (another server answers it whole), at most RESENDS times.
const RESENDS = 3;

class ResendError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function asksResend(err) {
  return err instanceof ResendError || (err instanceof ApiError && err.code === "SERVER_DRAINING");
}

// Run one turn: `open(signal)` makes the request (a new message, or a resume after a
// reload); its stream is read into `turn`, resuming after drops. `resend(signal)` sends the
// message again when the server asks for it.
async function run(turn, open, resend = open) {
  const controller = new AbortController();
  running = { controller, turn };
  setBusy(true);
  let refused = false;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await (attempt ? resend : open)(controller.signal);
        await consumeResuming(response, turn, controller.signal);
        break;
      } catch (err) {
        if (controller.signal.aborted || !asksResend(err) || attempt === RESENDS) throw err;
      }
      turn.restart("The server restarted · sending the message again…");
      await sleep(250 * (attempt + 1), controller.signal);
    }
  } catch (err) {
    refused = err instanceof ApiError && err.status === 401;
    if (controller.signal.aborted) {
      turn.finish("stopped");
    } else if (err instanceof ApiError || err instanceof ResendError) {
      turn.showError(err.code, err.message);
      turn.finish("error");
    } else if (err instanceof StreamCutError) {
      turn.showError("CONNECTION_CUT", err.message);
      turn.finish("error");
    } else {
      turn.showError("NETWORK", err.message || String(err)); // e.g. the server went away
      turn.finish("error");
    }
  } finally {
    if (running?.turn === turn) running = null; // (a new session may have started meanwhile)
    setBusy(Boolean(running));
    if (refused) tokenRefused();
    else if (client) ui.message.focus();
  }
}

function send(text) {
  follow.stick(); // the reader asked: show the answer, even if they had scrolled up
  return run(new Turn(ui.transcript, text), (signal) => client.sendMessage(sessionId, text, signal));
}

// Stop: abort the fetch (closes the connection; the pending read rejects with AbortError)
// and ask the server to cancel the run, where it supports that.
function stop() {
  if (!running) return;
  running.controller.abort();
  running.turn.finish("stopped");
  client?.cancel(sessionId);
}

ui.tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const token = ui.tokenInput.value.trim();
  if (token) connect(token);
});

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.message.value.trim();
  if (!text || running || !sessionId || !client) return;
  ui.message.value = "";
  send(text);
});

// Enter sends, Shift+Enter starts a new line.
ui.message.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.stop.addEventListener("click", stop);
// Escape stops the running turn, from anywhere on the page.
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && running) stop();
});

ui.newChat.addEventListener("click", () => {
  if (client) connect(client.token, { fresh: true });
});

// Follow the stream: keep the transcript scrolled to its end while text arrives (and while
// the page resizes: a phone's keyboard, a rotation), unless the reader scrolled up; scrolling
// back to the end, or sending, follows again. A scroll event comes a frame late, after text
// may already have moved the view back down, so the reader's own gestures upwards (wheel,
// touch, keys) stop following at once.
const follow = {
  on: true,
  atEnd: () => ui.transcript.scrollHeight - ui.transcript.scrollTop - ui.transcript.clientHeight < 24,
  keep() {
    if (this.on) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  },
  stick() {
    this.on = true;
    this.keep();
  },
};
ui.transcript.addEventListener("scroll", () => (follow.on = follow.atEnd()), { passive: true });
ui.transcript.addEventListener("wheel", (e) => { if (e.deltaY < 0) follow.on = false; }, { passive: true });
let touchY = null;
ui.transcript.addEventListener("touchstart", (e) => (touchY = e.touches[0].clientY), { passive: true });
ui.transcript.addEventListener("touchmove", (e) => {
  if (touchY !== null && e.touches[0].clientY > touchY) follow.on = false; // dragging the text down
}, { passive: true });
ui.transcript.addEventListener("keydown", (e) => {
  if (["ArrowUp", "PageUp", "Home"].includes(e.key)) follow.on = false;
});
new MutationObserver(() => follow.keep())
  .observe(ui.transcript, { childList: true, subtree: true, characterData: true });
new ResizeObserver(() => follow.keep()).observe(ui.transcript);

const token = initialToken();
ui.tokenInput.value = token;
setBusy(false);
if (token) connect(token);
