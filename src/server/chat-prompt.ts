/**
 * A conversation as the token ids a model continues: rendered through its chat template, tokenized with
 * special tokens parsed, BOS added only where the tokenizer wants one and the template did not write it.
 * `kvasm chat` prompts through chatPromptIds; the server's chat route (prompt-tokens.ts) through renderChat,
 * encoding in steps and checking sizes on the way, so both give a model the same ids.
 */
import type { Model } from "../model/model.ts";
import type { EncodeOptions } from "../tokenizer/tokenizer.ts";
import { ParamError } from "../errors.ts";
import type { ChatTemplate } from "./chat-template.ts";
import type { ChatMessage } from "./openai-request.ts";

/** The conversation's text and how to encode it: control tokens recognised, BOS unless the template wrote it. */
export function renderChat(model: Model, template: ChatTemplate, messages: ChatMessage[]): { text: string; encode: EncodeOptions } {
  const text = template.render(messages);
  const tok = model.tokenizer;
  const bosText = tok.bos >= 0 ? tok.piece(tok.bos) : "";
  const templateHasBos = bosText !== "" && text.startsWith(bosText);
  return { text, encode: { addBos: tok.addBos && !templateHasBos, parseSpecial: true } };
}

/**
 * The ids a model continues for `messages` (public: a library user's chat, as `kvasm chat` and the server prompt it):
 * the template's rendering with control tokens parsed, BOS added only where the tokenizer wants one and the template
 * did not write it. `ChatTemplate.forModel(model)` gives the template (ChatML when the file has none).
 */
export function chatPromptIds(model: Model, template: ChatTemplate, messages: ChatMessage[]): number[] {
  const { text, encode } = renderChat(model, template, messages);
  const ids = model.tokenizer.encode(text, encode);
  if (ids.length === 0) throw new ParamError("messages", "render to an empty prompt");
  return ids;
}
