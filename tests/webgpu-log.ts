// A WebGPU adapter wrapped to log what a backend asks of it (logDispatches): tests/webgpu.test.ts compares a replayed
// decode plan's calls with a freshly recorded step's, and bench/webgpu-dispatches.ts a tree's with another's.
import type { Gpu } from "../src/backends/webgpu/device.ts";

/** FNV-1a over the bytes (host writes: positions, tokens, page tables). */
function fnv(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193) >>> 0;
  return h.toString(16);
}

function bytesOf(data: ArrayBufferView | ArrayBuffer, off = 0, size?: number, words = false): Uint8Array {
  const u8 = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const unit = words && !(data instanceof ArrayBuffer) ? (data as Uint32Array).BYTES_PER_ELEMENT ?? 1 : 1;
  const start = off * unit;
  return u8.subarray(start, size === undefined ? undefined : start + size * unit);
}

/**
 * An adapter that logs, in order, what a backend on it asks of WebGPU: every buffer (by creation order: b0, b1, ...),
 * pipeline (its key) and bind group (its buffers, offsets and sizes), every dispatch (pipeline key, workgroups, the
 * dynamic offset, the bind group and its 32 param words, filled in from the params buffer's write at submit), every
 * buffer write (small ones hashed), copy, compute pass and submit; and the WGSL of every shader module built. Two
 * runs that ask the same of the GPU give the same log.
 */
export function logDispatches(
  adapter: Gpu,
): { adapter: Gpu; log: string[]; shaders: Array<{ label: string; code: string }>; mark(s: string): void } {
  const log: string[] = [];
  const shaders: Array<{ label: string; code: string }> = [];
  const bufId = new WeakMap<object, string>();
  const pipeKey = new WeakMap<object, string>();
  const groupDesc = new WeakMap<object, string>();
  let nBuf = 0, nGroup = 0;
  let params: Gpu = null;
  /** Dispatches of the open submit: their param words arrive with the params buffer's write at submit. */
  let pending: Array<{ line: string; offset: number }> = [];
  const name = (b: Gpu) => bufId.get(b) ?? "?";
  const wrap = (t: Gpu, hooks: Record<string, unknown>): Gpu =>
    new Proxy(t, {
      get(target, p) {
        if (typeof p === "string" && p in hooks) return hooks[p];
        const v = target[p];
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  const wrapPass = (pass: Gpu): Gpu => {
    let pipe = "", group = "", offset = -1;
    return wrap(pass, {
      setPipeline: (p: Gpu) => {
        pipe = pipeKey.get(p) ?? "?";
        pass.setPipeline(p);
      },
      setBindGroup: (i: number, g: Gpu, offs: Uint32Array, start: number, len: number) => {
        group = groupDesc.get(g) ?? "?";
        offset = offs[start];
        pass.setBindGroup(i, g, offs, start, len);
        if (len !== 1) log.push(`!bindgroup offsets ${len}`);
      },
      dispatchWorkgroups: (x: number, y = 1, z = 1) => {
        pending.push({ line: `dispatch ${pipe} ${x}x${y}x${z} @${offset} ${group}`, offset });
        pass.dispatchWorkgroups(x, y, z);
      },
      end: () => {
        // an encoded slot with an empty grid has no dispatch: its pipeline and bind group still count
        log.push("pass end");
        pass.end();
      },
    });
  };
  const wrapEncoder = (enc: Gpu): Gpu =>
    wrap(enc, {
      beginComputePass: (d?: Gpu) => {
        log.push(`pass begin${d?.timestampWrites ? " timed" : ""}`);
        return wrapPass(enc.beginComputePass(d));
      },
      copyBufferToBuffer: (a: Gpu, ao: number, b: Gpu, bo: number, n: number) => {
        log.push(`copy ${name(a)}@${ao} -> ${name(b)}@${bo} ${n}`);
        enc.copyBufferToBuffer(a, ao, b, bo, n);
      },
    });
  const flushPending = () => {
    for (const d of pending) log.push(d.line);
    pending = [];
  };
  const wrapDevice = (device: Gpu): Gpu => {
    const queue = device.queue;
    const wq = wrap(queue, {
      writeBuffer: (b: Gpu, off: number, data: Gpu, dataOff = 0, size?: number) => {
        const bytes = bytesOf(data, dataOff, size, true);
        if (b === params) {
          for (const d of pending) {
            const w = new Uint32Array(bytes.slice(d.offset, d.offset + 128).buffer);
            d.line += ` [${Array.from(w).join(",")}]`;
          }
        } else if (bytes.length <= 1 << 16) log.push(`write ${name(b)}@${off} ${bytes.length} ${fnv(bytes)}`);
        else log.push(`write ${name(b)}@${off} ${bytes.length}`);
        queue.writeBuffer(b, off, data, dataOff, size);
      },
      submit: (cmds: Gpu[]) => {
        flushPending();
        log.push(`submit ${cmds.length}`);
        queue.submit(cmds);
      },
    });
    return wrap(device, {
      queue: wq,
      createBuffer: (d: Gpu) => {
        const b = device.createBuffer(d);
        const id = `b${nBuf++}`;
        bufId.set(b, id);
        if (d.usage & 0x40) params = b;
        log.push(`buffer ${id} ${d.size} ${d.usage}`);
        return b;
      },
      createShaderModule: (d: Gpu) => {
        shaders.push({ label: d.label, code: d.code });
        return device.createShaderModule(d);
      },
      createComputePipeline: (d: Gpu) => {
        const p = device.createComputePipeline(d);
        pipeKey.set(p, d.label);
        log.push(`pipeline ${d.label}`);
        return p;
      },
      createBindGroup: (d: Gpu) => {
        const g = device.createBindGroup(d);
        const desc = `g${nGroup++}(` + d.entries.map((e: Gpu) => {
          const r = e.resource;
          return `${e.binding}:${name(r.buffer)}${r.offset !== undefined ? `+${r.offset}` : ""}${r.size !== undefined ? `:${r.size}` : ""}`;
        }).join(" ") + ")";
        groupDesc.set(g, desc);
        log.push(`bindgroup ${desc}`);
        return g;
      },
      createCommandEncoder: (d?: Gpu) => wrapEncoder(device.createCommandEncoder(d)),
    });
  };
  const wrapped = wrap(adapter, { requestDevice: async (d: Gpu) => wrapDevice(await adapter.requestDevice(d)) });
  return { adapter: wrapped, log, shaders, mark: (s: string) => log.push(`== ${s}`) };
}
