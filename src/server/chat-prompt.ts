/**
 * A conversation as the token ids a model continues: rendered through its chat template, the template's own
 * markup tokenized with control tokens parsed (`<|im_start|>` is one id), message content as plain text (a user
 * who writes `<|im_start|>system` gets those characters, not a forged turn), BOS added only where the tokenizer
 * wants one and the template did not write it. `kvasm chat` prompts through chatPromptIds; the server's chat
 * route (prompt-tokens.ts) through renderChat, encoding in steps and checking sizes on the way, so both give a
 * model the same ids.
 *
 * (llama.cpp's server and transformers' apply_chat_template parse control tokens in the whole rendered prompt,
 * content included; kvasm's tokenizer keeps them off by default for exactly this reason, and the chat path keeps
 * that promise for content.)
 */
import type { Model } from "../model/model.ts";
import type { EncodeOptions, Tokenizer } from "../tokenizer/tokenizer.ts";
import { ParamError } from "../errors.ts";
import type { ChatTemplate } from "./chat-template.ts";
import type { ChatMessage } from "./openai-request.ts";

/** A rendered conversation: its text, how to encode it, and the spans of it (content) to encode as plain text. */
export interface RenderedChat {
  text: string;
  /** Control tokens recognised (in the template's markup), BOS unless the template wrote it. */
  encode: EncodeOptions;
  /**
   * [start, end) ranges of `text` that are message content holding a control token's text, in order, not
   * overlapping: encoded without control tokens. Empty for almost every conversation (then `text` is encoded whole,
   * exactly as before content was told apart).
   */
  plain: Array<[number, number]>;
}

/** The conversation's text and how to encode it: control tokens recognised in the template's markup, not in content. */
export function renderChat(model: Model, template: ChatTemplate, messages: ChatMessage[]): RenderedChat {
  const text = template.render(messages);
  const tok = model.tokenizer;
  const bosText = tok.bos >= 0 ? tok.piece(tok.bos) : "";
  const templateHasBos = bosText !== "" && text.startsWith(bosText);
  const encode = { addBos: tok.addBos && !templateHasBos, parseSpecial: true };
  return { text, encode, plain: plainSpans(tok, template, messages, text) };
}

/**
 * The pieces to encode one after another: [text, options] with BOS only on the first and EOS (the tokenizer's
 * default) only on the last; a single piece where no content holds a control token's text.
 */
export function chatPieces(r: RenderedChat): Array<[string, EncodeOptions]> {
  if (r.plain.length === 0) return [[r.text, r.encode]];
  const out: Array<[string, EncodeOptions]> = [];
  let at = 0;
  const push = (end: number, parseSpecial: boolean) => {
    if (end > at) out.push([r.text.slice(at, end), { parseSpecial, addBos: false, addEos: false }]);
    at = end;
  };
  for (const [start, end] of r.plain) {
    push(start, true);
    push(end, false);
  }
  push(r.text.length, true);
  out[0][1] = { ...out[0][1], addBos: r.encode.addBos };
  const last = out[out.length - 1];
  last[1] = { parseSpecial: last[1].parseSpecial, addBos: last[1].addBos };
  return out;
}

/**
 * The ids a model continues for `messages` (public: a library user's chat, as `kvasm chat` and the server prompt it):
 * the template's rendering with its control tokens parsed and content's kept as text, BOS added only where the
 * tokenizer wants one and the template did not write it. `ChatTemplate.forModel(model)` gives the template (ChatML
 * when the file has none).
 */
export function chatPromptIds(model: Model, template: ChatTemplate, messages: ChatMessage[]): number[] {
  const ids = chatPieces(renderChat(model, template, messages)).flatMap(([text, opts]) => model.tokenizer.encode(text, opts));
  if (ids.length === 0) throw new ParamError("messages", "render to an empty prompt");
  return ids;
}

/** Private-use characters that mark content in a second render, to find where the template put it. */
const OPEN = "\uE000", CLOSE = "\uE001";

/**
 * Where the rendered text holds content with a control token's text in it. Only such content needs telling apart
 * (elsewhere parsing control tokens changes nothing), so only then is the template rendered a second time, that
 * content wrapped in marker characters: where the markers come back around unchanged content and the text without
 * them is the first render's, they are its spans. A template that rewrites such content (trims it, cuts it up) gives
 * no such render: the message is refused (400) rather than its control-token text read as control tokens.
 */
function plainSpans(tok: Tokenizer, template: ChatTemplate, messages: ChatMessage[], text: string): Array<[number, number]> {
  const controls = tok.controlPieces();
  // a message's name is rendered by some templates where it could forge a turn too; unlike content it has no reason to
  // hold such text, so it is refused rather than told apart
  for (let i = 0; i < messages.length; i++) {
    const name = (messages[i] as { name?: unknown }).name;
    const forgedName = typeof name === "string" ? controls.find((c) => name.includes(c)) : undefined;
    if (forgedName !== undefined) {
      throw new ParamError(`messages[${i}].name`, `holds the control token ${JSON.stringify(forgedName)}: a name cannot`);
    }
  }
  const forged = messages.map((m) => typeof m.content === "string" ? controls.find((c) => m.content.includes(c)) : undefined);
  if (forged.every((c) => c === undefined)) return [];
  const refuse = (): never => {
    const i = forged.findIndex((c) => c !== undefined);
    throw new ParamError(
      `messages[${i}].content`,
      `holds the control token ${JSON.stringify(forged[i])} as text, and this model's chat template rewrites content, so it ` +
        "cannot be kept apart from the template's own tokens: leave it out",
    );
  };
  if (messages.some((m) => typeof m.content === "string" && (m.content.includes(OPEN) || m.content.includes(CLOSE)))) refuse();
  const marked = template.render(messages.map((m, i) => forged[i] === undefined ? m : { ...m, content: OPEN + m.content + CLOSE }));
  const spans: Array<[number, number]> = [];
  let plainText = "";
  let from = 0;
  for (let open = marked.indexOf(OPEN); open >= 0; open = marked.indexOf(OPEN, from)) {
    const close = marked.indexOf(CLOSE, open + 1);
    if (close < 0 || marked.slice(open + 1, close).includes(OPEN)) refuse();
    plainText += marked.slice(from, open);
    const start = plainText.length;
    plainText += marked.slice(open + 1, close);
    spans.push([start, plainText.length]);
    from = close + 1;
  }
  plainText += marked.slice(from);
  if (plainText !== text || plainText.includes(CLOSE)) refuse();
  // every rendered copy of the content is kept as text, and nothing else: the rest is the template's
  if (!spans.every(([s, e]) => messages.some((m, i) => forged[i] !== undefined && text.slice(s, e) === m.content))) refuse();
  return spans;
}
