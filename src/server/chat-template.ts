/**
 * Chat templates: a model's own Jinja template (GGUF `tokenizer.chat_template`)
 * rendered with @huggingface/jinja, the same engine transformers.js uses, so
 * Hugging Face templates (Llama 3, ChatML, Mistral, Gemma, ...) render as they
 * do in Python.
 *
 * Fallback: a model without a template is prompted in ChatML
 * (`<|im_start|>role\ncontent<|im_end|>\n`, ending with `<|im_start|>assistant\n`),
 * the format llama.cpp's server also falls back to. For a base model that has
 * never seen ChatML these markers are ordinary text, which is honest: there is
 * no right chat format for a model that was not trained for chat.
 */
import { Template } from "@huggingface/jinja";
import type { Model } from "../model/model.ts";
import type { ModelFile } from "../formats/types.ts";
import { ParamError } from "../errors.ts";
import type { ChatMessage } from "./openai-request.ts";

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface ChatTemplateContext {
  bosToken: string;
  eosToken: string;
}

export class ChatTemplate {
  private readonly template: Template;

  /** `source` is Jinja; `isFallback` says it is not the model's own. */
  constructor(readonly source: string, private readonly ctx: ChatTemplateContext, readonly isFallback = false) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ParamError("chat_template", `does not parse: ${(e as Error).message}`);
    }
  }

  /** The model's template, or the ChatML fallback when its file has none. */
  static forModel(model: Model): ChatTemplate {
    const tok = model.tokenizer;
    return ChatTemplate.fromMetadata(model.file.metadata, {
      bosToken: tok.bos >= 0 ? tok.piece(tok.bos) : "",
      eosToken: tok.eos >= 0 ? tok.piece(tok.eos) : "",
    });
  }

  /** From a file's metadata (GGUF `tokenizer.chat_template`), or the ChatML fallback. */
  static fromMetadata(metadata: ModelFile["metadata"], ctx: ChatTemplateContext): ChatTemplate {
    const own = metadata.get("tokenizer.chat_template");
    return typeof own === "string" && own.trim() !== "" ? new ChatTemplate(own, ctx) : new ChatTemplate(CHATML_TEMPLATE, ctx, true);
  }

  /** The prompt text for `messages`, ending where the assistant's reply begins. */
  render(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    try {
      return this.template.render({
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? true,
        bos_token: this.ctx.bosToken,
        eos_token: this.ctx.eosToken,
      });
    } catch (e) {
      // templates reject conversations they cannot express (e.g. "roles must alternate") with raise_exception
      throw new ParamError("messages", `the model's chat template refused them: ${(e as Error).message}`);
    }
  }
}
