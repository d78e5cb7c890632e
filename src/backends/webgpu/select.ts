import type { Backend } from "../backend.ts";
import type { TensorInfo } from "../../formats/types.ts";
import { ggmlTypeName } from "../../formats/ggml-types.ts";
import { ParamError } from "../../errors.ts";
import { limitsOf, requestAdapter, WebGpuError } from "./device.ts";
import { WebGpuBackend } from "./backend.ts";
import { matmulTypes } from "./wgsl-matmul.ts";
import { BACKEND_NAMES, type BackendName, registerBackend } from "../select.ts";

export { BACKEND_NAMES, type BackendName } from "../select.ts";

// importing this module (src/mod.ts does) makes "webgpu" and "auto" loadModel backends
registerBackend(["webgpu", "auto"], (name, wasm, needs, onNotice) =>
  backendByName(name, wasm, () => {
    // what a GPU would hold: every tensor, and KV pages + scratch (sized for its kernels) in its one state binding
    const probe = new WebGpuBackend();
    return { tensors: needs.tensors, stateBytes: needs.stateBytes(probe) };
  }, onNotice));

/** What a model asks of a GPU: its weight tensors, and the state buffer (KV pages + scratch) in bytes. */
export interface GpuNeeds {
  tensors: TensorInfo[];
  stateBytes: number;
}

/**
 * Picks the backend a name asks for. "wasm" is the WASM backend; "webgpu" is
 * WebGPU or a typed error saying why not; "auto" is WebGPU when an adapter
 * exists and the model fits its limits (every tensor within maxBufferSize,
 * KV cache and scratch within one storage binding), else WASM, with the
 * reason passed to onNotice.
 */
export async function backendByName(
  name: BackendName,
  wasm: () => Promise<Backend>,
  needs: () => GpuNeeds,
  onNotice?: (message: string) => void,
): Promise<Backend> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new ParamError("backend", `must be one of ${BACKEND_NAMES.join(", ")}, got ${JSON.stringify(name)}`);
  }
  if (name === "wasm") return wasm();
  const { adapter, reason } = await requestAdapter();
  const misfit = adapter ? whyNotFit(adapter, needs()) : reason!;
  if (!misfit) return new WebGpuBackend({ adapter });
  if (name === "webgpu") throw new WebGpuError(misfit);
  onNotice?.(`WebGPU not used (${misfit}); running on WASM`);
  return wasm();
}

function whyNotFit(adapter: unknown, needs: GpuNeeds): string | undefined {
  const limits = limitsOf(adapter);
  const types = matmulTypes();
  for (const t of needs.tensors) {
    if (t.shape.length > 1 && !types.includes(t.type)) {
      return `tensor ${t.name} is ${ggmlTypeName(t.type)}, which the WebGPU kernels do not read`;
    }
    if (t.byteLength + 16 > limits.maxBufferSize) {
      return `tensor ${t.name} (${t.byteLength} bytes) exceeds the adapter's maxBufferSize (${limits.maxBufferSize})`;
    }
  }
  if (needs.stateBytes > limits.maxStorageBufferBindingSize) {
    return `KV cache and scratch need ${needs.stateBytes} bytes, past the adapter's maxStorageBufferBindingSize (${limits.maxStorageBufferBindingSize}); a shorter contextLength fits`;
  }
  return undefined;
}
