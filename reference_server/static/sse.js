// sse.js: a parser for `text/event-stream`, following the WHATWG HTML standard
// ("Server-sent events", section "Interpreting an event stream"), for use with fetch().
//
// EventSource has this parser built in, but EventSource can only GET (see the notebook),
// so a page that POSTs with fetch() must parse the stream itself. The rules:
//   - lines end in CRLF, a lone LF or a lone CR;
//   - a blank line ends a frame ("dispatches the event");
//   - "field: value" (one space after the colon is dropped); a line without a colon is a
//     field with an empty value; a line starting with ":" is a comment (keep-alive);
//   - fields: event (the type, default "message"), data (several lines join with "\n"),
//     id (remembered across frames: the last event id), retry (reconnect delay in ms);
//     unknown fields are ignored;
//   - a frame without data is not dispatched; an unfinished frame at the end is dropped.
// Network reads split the bytes anywhere: inside a line, between the CR and LF of one line
// break, even inside a multi-byte UTF-8 character. The parser keeps what it cannot finish yet.

export class SSEParser {
  constructor() {
    // stream: true keeps a split UTF-8 character until its last byte arrives;
    // the decoder also drops a leading byte order mark, as the standard asks.
    this.decoder = new TextDecoder("utf-8");
    this.line = ""; // the current line, not yet ended
    this.afterCR = false; // the last line ended with CR: a LF at the start of the next read belongs to it
    this.eventType = "";
    this.data = "";
    this.hasData = false; // at least one data field in the current frame
    this.lastEventId = ""; // kept across frames; send it as Last-Event-ID to resume
    this.retry = null; // the server's reconnection delay in ms, if it sent one
  }

  // Feed one read (a Uint8Array, or a string in tests); returns the frames it completed,
  // each { type, data, id }.
  feed(chunk) {
    let text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.afterCR && text.length > 0) {
      this.afterCR = false;
      if (text[0] === "\n") text = text.slice(1); // the LF of a CRLF split across reads
    }
    const frames = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c !== "\r" && c !== "\n") continue;
      const frame = this.#processLine(this.line + text.slice(start, i));
      if (frame) frames.push(frame);
      this.line = "";
      if (c === "\r") {
        if (i + 1 === text.length) this.afterCR = true; // the LF may come in the next read
        else if (text[i + 1] === "\n") i++; // CRLF: one line break
      }
      start = i + 1;
    }
    this.line += text.slice(start);
    return frames;
  }

  // The stream ended. Returns true if an unfinished frame was dropped (a cut connection).
  end() {
    this.line += this.decoder.decode(); // flush: an incomplete character becomes U+FFFD
    const cut = this.line.length > 0 || this.hasData || this.eventType !== "";
    this.line = "";
    this.#reset();
    return cut;
  }

  #reset() {
    this.eventType = "";
    this.data = "";
    this.hasData = false;
  }

  #processLine(line) {
    if (line === "") {
      // Blank line: dispatch the frame, if it has data.
      if (!this.hasData) {
        this.#reset();
        return null;
      }
      const frame = { type: this.eventType || "message", data: this.data, id: this.lastEventId };
      this.#reset();
      return frame;
    }
    if (line[0] === ":") return null; // a comment, e.g. a keep-alive ": ping"
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default: // unknown fields are ignored
    }
    return null;
  }
}

// [snippet: js-read-sse]
// Read a fetch() Response body as SSE frames: `for await (const frame of readSSE(response))`.
// The parser is returned through `onParser` so a caller can read lastEventId (to resume)
// and retry. Aborting the request (AbortController) rejects the pending read and ends the loop.
export async function* readSSE(response, { onParser } = {}) {
  const parser = new SSEParser();
  onParser?.(parser);
  const reader = response.body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.feed(value);
    }
    finished = true;
    if (parser.end()) throw new StreamCutError();
  } finally {
    if (!finished) reader.cancel().catch(() => {}); // the caller stopped early: release the body
  }
}
// [end snippet]

// The body ended in the middle of a frame: the connection was cut.
export class StreamCutError extends Error {
  constructor(message = "The stream ended in the middle of a frame.") {
    super(message);
    this.name = "StreamCutError";
  }
}
