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
import { Environment, Interpreter, Template } from "@huggingface/jinja";
import type { Model } from "../model/model.ts";
import type { ModelFile } from "../formats/types.ts";
import { checkOptionNames, NumericalError, optionNames, ParamError } from "../errors.ts";
import type { ChatMessage } from "./openai-request.ts";

/**
 * A template comes from the model file, so it is not trusted: rendering runs under a budget of
 * interpreter steps, wall time and output size (`{% for i in range(100000000) %}` is refused at the
 * range, a loop that keeps going stops at the step or time limit, a string that doubles stops at the
 * size limit). Past any limit the request gets a NumericalError (the model's fault: a 500), and the
 * event loop was held for at most `timeoutMs`. Normal templates take well under a millisecond.
 */
export interface TemplateLimits {
  /**
   * Interpreter steps per render (a node evaluated, a loop iteration, an element of an array a call or filter made);
   * default 250,000 (a 5,000-message Llama 3 chat takes 155,000).
   */
  maxSteps: number;
  /** Characters of any string the template builds, the output included; default 4 Mi. */
  maxOutputChars: number;
  /** Wall time per render in milliseconds; default 500. */
  timeoutMs: number;
}

/** TemplateLimits' names: chatTemplateLimits refuses any other key. */
export const TEMPLATE_LIMIT_NAMES = optionNames<TemplateLimits>()(["maxSteps", "maxOutputChars", "timeoutMs"]);

const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = { maxSteps: 250_000, maxOutputChars: 4 << 20, timeoutMs: 500 };

/** What @huggingface/jinja's Interpreter keeps private: the one method every node goes through. */
type Evaluate = (statement: unknown, environment: unknown) => { type: string; value: unknown };
const evaluateNode = (Interpreter.prototype as unknown as { evaluate: Evaluate }).evaluate;
type EvaluateBlock = (statements: unknown[], environment: unknown) => unknown;
const evaluateBlock = (Interpreter.prototype as unknown as { evaluateBlock: EvaluateBlock }).evaluateBlock;
type ApplyFilter = (operand: unknown, filter: { type: string; args?: { type: string; value: unknown }[] }, environment: unknown) => unknown;
const applyFilter = (Interpreter.prototype as unknown as { applyFilter: ApplyFilter }).applyFilter;

/**
 * Markers of the ChatML fallback: a model that was not trained on them (its file has no template) may write them as
 * text, which ends its turn; `kvasm chat` and the server's chat route stop there.
 */
export const CHATML_STOPS: readonly string[] = ["<|im_end|>", "<|im_start|>"];

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface ChatTemplateContext {
  bosToken: string;
  eosToken: string;
}

export class ChatTemplate {
  private readonly template: Template;

  readonly limits: TemplateLimits;

  /** `source` is Jinja; `isFallback` says it is not the model's own. */
  constructor(
    readonly source: string,
    private readonly ctx: ChatTemplateContext,
    readonly isFallback = false,
    limits: Partial<TemplateLimits> = {},
  ) {
    checkOptionNames("chatTemplateLimits", limits, TEMPLATE_LIMIT_NAMES);
    // a field given as undefined keeps its default (a spread put undefined over it, refused as "got undefined"); null
    // is kept, for the check below to refuse (`??` took it for the default unseen)
    const given = (k: keyof TemplateLimits) => limits[k] !== undefined ? limits[k] : DEFAULT_TEMPLATE_LIMITS[k];
    this.limits = { maxSteps: given("maxSteps"), maxOutputChars: given("maxOutputChars"), timeoutMs: given("timeoutMs") };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!(Number.isSafeInteger(v) && v > 0)) {
        throw new ParamError(`chatTemplateLimits.${k}`, `must be a positive integer, got ${String(v)}`);
      }
    }
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ParamError("chat_template", `does not parse: ${(e as Error).message}`);
    }
  }

  /** The model's template, or the ChatML fallback when its file has none. */
  static forModel(model: Model, limits?: Partial<TemplateLimits>): ChatTemplate {
    const tok = model.tokenizer;
    return ChatTemplate.fromMetadata(model.file.metadata, {
      bosToken: tok.bos >= 0 ? tok.piece(tok.bos) : "",
      eosToken: tok.eos >= 0 ? tok.piece(tok.eos) : "",
    }, limits);
  }

  /** From a file's metadata (GGUF `tokenizer.chat_template`), or the ChatML fallback. */
  static fromMetadata(metadata: ModelFile["metadata"], ctx: ChatTemplateContext, limits?: Partial<TemplateLimits>): ChatTemplate {
    const own = metadata.get("tokenizer.chat_template");
    return typeof own === "string" && own.trim() !== ""
      ? new ChatTemplate(own, ctx, false, limits)
      : new ChatTemplate(CHATML_TEMPLATE, ctx, true, limits);
  }

  /** The prompt text for `messages`, ending where the assistant's reply begins. */
  render(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    const over = new TemplateBudget(this.limits);
    const env = new Environment();
    const vars: Record<string, unknown> = {
      // the globals @huggingface/jinja's own render sets, with a range() that cannot outgrow the budget
      false: false,
      true: true,
      none: null,
      False: false,
      True: true,
      None: null,
      raise_exception: (message: string) => {
        throw new TemplateRaised(String(message));
      },
      range: (start: number, stop?: number, step = 1) => over.range(start, stop, step),
      strftime_now: strftimeNow,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.ctx.bosToken,
      eos_token: this.ctx.eosToken,
    };
    for (const [k, v] of Object.entries(vars)) env.set(k, v);
    const interpreter = new Interpreter(env);
    // every node and every filter of this render goes through the budget (own properties shadow the prototype's)
    Object.defineProperty(interpreter, "evaluate", {
      value: (statement: unknown, environment: unknown) => over.checked(statement, evaluateNode.call(interpreter, statement, environment)),
    });
    // a loop's body is a block evaluated once per iteration, even when empty: each counts as a step
    Object.defineProperty(interpreter, "evaluateBlock", {
      value: (statements: unknown[], environment: unknown) => {
        over.step();
        return evaluateBlock.call(interpreter, statements, environment);
      },
    });
    Object.defineProperty(interpreter, "applyFilter", {
      value: (operand: unknown, filter: Parameters<ApplyFilter>[1], environment: unknown) => {
        over.filterArgs(filter);
        return applyFilter.call(interpreter, operand, filter, environment);
      },
    });
    try {
      const out = interpreter.run((this.template as unknown as { parsed: Parameters<Interpreter["run"]>[0] }).parsed);
      return String((out as { value: unknown }).value);
    } catch (e) {
      if (e instanceof TemplateOverBudget) throw new NumericalError(`the chat template ${e.message}`, "tokenizer.chat_template");
      // templates reject conversations they cannot express (e.g. "roles must alternate") with raise_exception: the
      // caller's to change
      if (e instanceof TemplateRaised) throw new ParamError("messages", `the model's chat template refused them: ${e.message}`);
      // anything else ("Unknown operator `*`", a filter the engine lacks) is the template failing: the model's fault, a 500
      throw new NumericalError(`the chat template failed to render: ${(e as Error)?.message ?? String(e)}`, "tokenizer.chat_template");
    }
  }
}

class TemplateRaised extends Error {}
class TemplateOverBudget extends Error {}

/** Steps, time and string sizes of one render. */
class TemplateBudget {
  private steps = 0;
  private readonly deadline: number;

  constructor(private readonly limits: TemplateLimits) {
    this.deadline = performance.now() + limits.timeoutMs;
  }

  private fail(problem: string, option: keyof TemplateLimits): never {
    throw new TemplateOverBudget(`${problem} (chatTemplateLimits.${option} = ${this.limits[option]})`);
  }

  /** `n` steps at once (the elements of a new array). */
  charge(n: number): void {
    this.steps += n - 1;
    this.step();
  }

  /** Counts one step (a node evaluated, a block entered); the clock is read every 1024. */
  step(): void {
    if (++this.steps > this.limits.maxSteps) this.fail(`ran past ${this.limits.maxSteps} steps`, "maxSteps");
    if ((this.steps & 1023) === 0 && performance.now() > this.deadline) this.fail(`ran past ${this.limits.timeoutMs} ms`, "timeoutMs");
  }

  /**
   * Counts one evaluated node and checks what it produced. An array that a call or a filter made
   * (range(), list, split, items) costs a step per element: a loop walks it before its body runs.
   */
  checked<T extends { type: string; value: unknown }>(statement: unknown, v: T): T {
    this.step();
    const kind = (statement as { type?: string })?.type;
    if (Array.isArray(v?.value) && (kind === "CallExpression" || kind === "FilterExpression")) this.charge(v.value.length);
    if (typeof v?.value === "string" && v.value.length > this.limits.maxOutputChars) {
      this.fail(`built a string of ${v.value.length} characters`, "maxOutputChars");
    }
    return v;
  }

  /** range() as Python's, refused before it allocates more elements than steps are left to visit them. */
  range(start: number, stop: number | undefined, step: number): number[] {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error("range() step must not be zero");
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (!(n <= this.limits.maxSteps - this.steps)) this.fail(`asked for range() of ${n} elements`, "maxSteps");
    this.charge(n); // a template walks what it asked for
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = start + i * step;
    return out;
  }

  /** Filters that pad by a literal width (indent, center, tojson's indent) are refused past the size limit before they allocate. */
  filterArgs(filter: Parameters<ApplyFilter>[1]): void {
    for (const a of filter.args ?? []) {
      const v = (a as { value?: unknown; type: string }).type === "KeywordArgumentExpression"
        ? (a as unknown as { value: { value: unknown } }).value.value
        : a.value;
      if (typeof v === "number" && v > this.limits.maxOutputChars) this.fail(`passed a filter the width ${v}`, "maxOutputChars");
    }
  }
}

/** Jinja's strftime_now (Llama 3.1's templates print today's date): the directives templates use. */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const month = (style: "long" | "short") => new Intl.DateTimeFormat("en-US", { month: style }).format(d);
  return String(format).replace(
    /%[YmdbBHM%]/g,
    (t) =>
      t === "%Y"
        ? String(d.getFullYear())
        : t === "%m"
        ? pad(d.getMonth() + 1)
        : t === "%d"
        ? pad(d.getDate())
        : t === "%b"
        ? month("short")
        : t === "%B"
        ? month("long")
        : t === "%H"
        ? pad(d.getHours())
        : t === "%M"
        ? pad(d.getMinutes())
        : "%",
  );
}
