// markdown.js: a small, safe subset of Markdown, drawn with DOM nodes. Models write Markdown
// (Gemini's thoughts start each step with a **bold title**); shown as raw text, the stars and
// hashes are noise. Every piece of model text goes in through textContent or a text node,
// never innerHTML, so a "<script>" in an answer is shown, not run. No links or images: an
// address in the text stays text (no javascript: URL can reach an href).
//
// Blocks: paragraphs (a blank line apart; a single newline is a line break), "#" headings,
// "-", "*", "+" and "1." list items, ``` fenced code. Inline: `code`, **bold**, *italic*.
// Text still streaming renders the same way: an unclosed ``` is code to the end, an unclosed
// ** stays as typed until its pair arrives.

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

// `code` first (nothing inside it is formatted), then **bold**, then *italic*.
const INLINE = /`([^`\n]+)`|\*\*(?=\S)([^*\n]+?)\*\*|\*(?=[^\s*])([^*\n]+?)\*(?!\*)/g;

// Append `text` to `parent`, its inline marks as elements; newlines become <br>.
function appendInline(parent, text) {
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (i > 0) parent.append(el("br"));
    let at = 0;
    for (const match of line.matchAll(INLINE)) {
      if (match.index > at) parent.append(line.slice(at, match.index));
      const [, code, bold, italic] = match;
      const node = el(code !== undefined ? "code" : bold !== undefined ? "strong" : "em");
      node.textContent = code ?? bold ?? italic;
      parent.append(node);
      at = match.index + match[0].length;
    }
    if (at < line.length) parent.append(line.slice(at));
  });
}

const FENCE = /^\s*```/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;

// The blocks of `text`: [{ kind: "p" | "h" | "pre", text } | { kind: "ul" | "ol", items, start }].
function blocks(text) {
  const out = [];
  const lines = text.split("\n");
  let paragraph = [];
  let list = null; // the list being filled: items may be a blank line apart
  let blank = false; // the previous line was blank
  const flush = () => {
    if (paragraph.length) out.push({ kind: "p", text: paragraph.join("\n") });
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (FENCE.test(line)) {
      flush();
      list = null;
      const code = [];
      for (i++; i < lines.length && !FENCE.test(lines[i]); i++) code.push(lines[i]);
      out.push({ kind: "pre", text: code.join("\n") });
      continue;
    }
    if (line.trim() === "") {
      flush();
      blank = true;
      continue;
    }
    const heading = HEADING.exec(line);
    const bullet = BULLET.exec(line);
    const numbered = NUMBERED.exec(line);
    if (bullet || numbered) {
      flush();
      const kind = bullet ? "ul" : "ol";
      const item = bullet ? bullet[1] : numbered[2];
      if (list?.kind === kind) {
        list.items.push(item);
      } else {
        list = { kind, items: [item], start: numbered ? Number(numbered[1]) : 1 };
        out.push(list);
      }
    } else if (list && !blank && /^\s/.test(line)) {
      list.items[list.items.length - 1] += `\n${line.trim()}`; // an item's indented next line
    } else if (heading) {
      flush();
      list = null;
      out.push({ kind: "h", text: heading[2] });
    } else {
      list = null;
      paragraph.push(line);
    }
    blank = false;
  }
  flush();
  return out;
}

// Replace the children of `container` with `text` drawn as Markdown.
export function renderMarkdown(container, text) {
  const nodes = blocks(text).map((block) => {
    if (block.kind === "pre") {
      const pre = el("pre");
      const code = el("code");
      code.textContent = block.text;
      pre.append(code);
      return pre;
    }
    if (block.kind === "ul" || block.kind === "ol") {
      const list = el(block.kind);
      if (block.kind === "ol" && block.start !== 1) list.start = block.start;
      for (const item of block.items) {
        const li = el("li");
        appendInline(li, item);
        list.append(li);
      }
      return list;
    }
    const node = el("p", block.kind === "h" ? "md-heading" : "");
    appendInline(node, block.text);
    return node;
  });
  container.replaceChildren(...nodes);
}
