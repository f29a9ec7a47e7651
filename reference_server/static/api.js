// api.js: the reference server's HTTP API, one method per endpoint.
// Every /api call carries the token in the Authorization header; that is why the page uses
// fetch() and not EventSource, which cannot set headers (notebook 06 explains).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After (429 and 503), else null
  }
}

// The server's JSON errors look like {"error": {"code": "...", "message": "..."}}.
async function apiError(response) {
  let code = `HTTP_${response.status}`;
  let message = response.statusText || "Request failed";
  try {
    const body = await response.json();
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
    else if (typeof body?.detail === "string") message = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return new ApiError(response.status, code, message, Number.isNaN(retryAfter) ? null : retryAfter);
}

export class ChatClient {
  constructor(token, base = "") {
    this.token = token;
    this.base = base;
  }

  #headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  // POST /api/sessions -> 201 {"session_id": "..."}
  async createSession() {
    const response = await fetch(`${this.base}/api/sessions`, { method: "POST", headers: this.#headers() });
    if (!response.ok) throw await apiError(response);
    const { session_id: sessionId } = await response.json();
    return sessionId;
  }

  // GET /api/sessions/{id}/events -> {"events": [...], "running": bool}: the conversation so
  // far (the user's messages and the model's whole responses, as the stream sends them), to
  // draw it again after a reload; `running`: a turn is under way, resume() reads it.
  async history(sessionId, signal) {
    const response = await fetch(`${this.base}/api/sessions/${encodeURIComponent(sessionId)}/events`, {
      headers: this.#headers(),
      signal,
    });
    if (!response.ok) throw await apiError(response);
    return response.json();
  }

  // POST /api/sessions/{id}/messages -> 200 text/event-stream. Resolves once the headers are
  // in; read the body with readSSE(). `signal` (an AbortController's) stops the request.
  // [snippet: js-post-stream]
  async sendMessage(sessionId, text, signal) {
    const response = await fetch(`${this.base}/api/sessions/${encodeURIComponent(sessionId)}/messages`, {
      method: "POST",
      headers: this.#headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ text }),
      signal,
    });
    return this.#stream(response);
  }
  // [end snippet]

  // [snippet: js-resume]
  // GET /api/sessions/{id}/stream with Last-Event-ID: after a dropped connection, the frames
  // of the session's latest turn after the last `id:` seen, then the rest live (notebook 09).
  // Read like sendMessage's. A 404 NO_TURN_TO_RESUME means there is nothing left to resume.
  // `turnId` (the X-Turn-Id header of the first response) makes the server refuse to resume a
  // newer turn into this one: frame ids restart with each turn.
  async resume(sessionId, lastEventId, turnId, signal) {
    const query = turnId ? `?turn=${encodeURIComponent(turnId)}` : "";
    const response = await fetch(`${this.base}/api/sessions/${encodeURIComponent(sessionId)}/stream${query}`, {
      headers: this.#headers({ Accept: "text/event-stream", "Last-Event-ID": lastEventId || "0" }),
      signal,
    });
    return this.#stream(response);
  }
  // [end snippet]

  async #stream(response) {
    if (!response.ok) throw await apiError(response);
    const type = response.headers.get("Content-Type") ?? "";
    if (!type.startsWith("text/event-stream")) {
      throw new ApiError(response.status, "NOT_A_STREAM", `Expected text/event-stream, got ${type || "no type"}`);
    }
    return response;
  }

  // POST /api/sessions/{id}/cancel: ask the server to stop the run too (aborting the fetch
  // only closes the connection). Servers without the endpoint answer 404 or 405: fine.
  async cancel(sessionId) {
    try {
      const response = await fetch(`${this.base}/api/sessions/${encodeURIComponent(sessionId)}/cancel`, {
        method: "POST",
        headers: this.#headers(),
      });
      return response.ok;
    } catch {
      return false; // best effort: the abort has already stopped the page's side
    }
  }
}
