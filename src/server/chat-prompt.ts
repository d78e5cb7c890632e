/**
 * A conversation as the token ids a model continues: rendered through its chat template, tokenized with
 * special tokens parsed, BOS added only where the tokenizer wants one and the template did not write it.
 * The server's chat route and `kvasm chat` both prompt through here, so they give a model the same ids.
 */
import type { Model } from "../model/model.ts";
import { ParamError } from "../errors.ts";
import type { ChatTemplate } from "./chat-template.ts";
import type { ChatMessage } from "./openai-request.ts";

export function chatPromptIds(model: Model, template: ChatTemplate, messages: ChatMessage[]): number[] {
  const text = template.render(messages);
  const tok = model.tokenizer;
  const bosText = tok.bos >= 0 ? tok.piece(tok.bos) : "";
  const templateHasBos = bosText !== "" && text.startsWith(bosText);
  const ids = tok.encode(text, { addBos: tok.addBos && !templateHasBos, parseSpecial: true });
  if (ids.length === 0) throw new ParamError("messages", "render to an empty prompt");
  return ids;
}
