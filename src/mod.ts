/**
 * kvasm: LLM inference for Deno, Bun and Node on WebAssembly SIMD.
 *
 *   import { loadModel, generate } from "kvasm";
 *   const model = await loadModel(); // the bundled stories260K; or a path, URL, bytes, stream
 *   for await (const piece of model.generate("Once upon a time", { temperature: 0 })) out(piece);
 *   await model.close();
 */
export { loadModel, type LoadOptions } from "./model/load.ts";
export { Model, type StepInput } from "./model/model.ts";
export type { ModelInput } from "./io/model-input.ts";
export { type FinishReason, generate, type GeneratedToken, type GenerateOptions, type GenerationResult } from "./generate.ts";
export { Sampler, type SampleResult, type TokenLogprob } from "./sampling/sampler.ts";
export { Engine, type EngineOptions, QueueFullError } from "./engine/engine.ts";
export {
  type ChoiceResult,
  type EngineEvent,
  EngineRequest,
  type FinishEvent,
  type RequestParams,
  type RequestResult,
  type TokenEvent,
  type Usage,
} from "./engine/request.ts";
export type { SamplingParams } from "./sampling/params.ts";
export { TextStream, type Tokenizer } from "./tokenizer/tokenizer.ts";
export type { ModelConfig } from "./model/config.ts";
export type { Backend } from "./backends/backend.ts";
export { WasmBackend } from "./backends/wasm.ts";
export { ThreadedWasmBackend } from "./backends/wasm-threads.ts";
export { selectBackend } from "./backends/select.ts";
export { WebGpuBackend, type WebGpuOptions } from "./backends/webgpu/backend.ts";
// registers the "webgpu" and "auto" backend names for loadModel (kvasm/edge leaves them out, and WGSL with them)
import "./backends/webgpu/select.ts";
export { WebGpuError, webgpuStatus } from "./backends/webgpu/device.ts";
export { openModelFile } from "./formats/open.ts";
export { DEFAULT_HEADER_LIMITS, type HeaderLimits } from "./formats/types.ts";
export { readGGUF } from "./formats/gguf.ts";
export { BytesSink, fileSink, writeGGUF } from "./formats/gguf-writer.ts";
export { quantizeModel } from "./quant/quantize.ts";
export {
  ClosedError,
  ContextLengthError,
  DownloadError,
  FormatError,
  KvasmError,
  NumericalError,
  OutOfMemoryError,
  ParamError,
  UnsupportedError,
} from "./errors.ts";
export type { ByteSource } from "./io/source.ts";
export { BytesSource } from "./io/source.ts";
export { createHandler, type HandlerOptions, type KvasmHandler } from "./server/handler.ts";
export { type FetchHandler, type RunningServer, serve, type ServeOptions } from "./server/serve.ts";
export { ChatTemplate } from "./server/chat-template.ts";
export { chatPromptIds } from "./server/chat-prompt.ts";
export type { ChatMessage } from "./server/openai-request.ts";
export { createEdgeHandler, type EdgeHandler, type EdgeOptions } from "./edge.ts";
