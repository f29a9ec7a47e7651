// chat.js: the page. Connect with a token, create a session, send messages, render the
// streamed events, stop a turn. The pieces it wires together:
//   api.js    - the HTTP calls (fetch, Authorization header)
//   sse.js    - the SSE parser over the response body
//   render.js - one turn of the transcript, updated in place by Event id
import { ApiError, ChatClient } from "./api.js";
import { readSSE, StreamCutError } from "./sse.js";
import { Turn } from "./render.js";

const TOKEN_KEY = "workshop-token";
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
  ui.send.disabled = busy || !sessionId;
  ui.message.disabled = !sessionId;
  ui.stop.disabled = !busy;
  ui.newChat.disabled = busy || !client;
}

// Check the token by creating a session with it; a new session starts an empty transcript.
async function connect(token) {
  stop();
  ui.transcript.replaceChildren();
  client = new ChatClient(token);
  sessionId = null;
  setBusy(false);
  setConnection("Connecting…", false);
  try {
    sessionId = await client.createSession();
    localStorage.setItem(TOKEN_KEY, token); // fine for a development token; the page never uses innerHTML
    setConnection(`Connected · session ${sessionId.slice(0, 8)}…`, true);
    ui.connection.dataset.session = sessionId; // the whole id, for tools and tests
    ui.message.disabled = false;
    ui.message.focus();
  } catch (err) {
    client = null;
    const reason = err instanceof ApiError && err.status === 401 ? "Token rejected (401)" : `Cannot connect: ${err.message}`;
    setConnection(reason, false);
    ui.tokenInput.focus();
  }
  setBusy(false);
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

function isDrop(err, signal) {
  return !signal.aborted && (err instanceof StreamCutError || err instanceof TypeError);
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

async function send(text) {
  const controller = new AbortController();
  const turn = new Turn(ui.transcript, text);
  running = { controller, turn };
  setBusy(true);
  try {
    const response = await client.sendMessage(sessionId, text, controller.signal);
    await consumeResuming(response, turn, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) {
      turn.finish("stopped");
    } else if (err instanceof ApiError) {
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
    ui.message.focus();
  }
}

// Stop: abort the fetch (closes the connection; the pending read rejects with AbortError)
// and ask the server to cancel the run, where it supports that.
function stop() {
  if (!running) return;
  running.controller.abort();
  running.turn.finish("stopped");
  client.cancel(sessionId);
}

ui.tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const token = ui.tokenInput.value.trim();
  if (token) connect(token);
});

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.message.value.trim();
  if (!text || running || !sessionId) return;
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
  if (client) connect(client.token);
});

// Keep the newest text in view while it streams, unless the reader scrolled up.
new MutationObserver(() => {
  const t = ui.transcript;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 120) t.scrollTop = t.scrollHeight;
}).observe(ui.transcript, { childList: true, subtree: true, characterData: true });

const token = initialToken();
ui.tokenInput.value = token;
setBusy(false);
if (token) connect(token);
