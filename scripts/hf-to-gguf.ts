/**
 * A Hugging Face checkpoint (config.json + safetensors) as a GGUF file with llama.cpp's keys and tensor names, the
 * tensors in their own element type (src/convert/hf-to-gguf.ts). `kvasm quantize` reads such checkpoints itself; this
 * writes the unquantized GGUF. A script of its own: the library module it calls is bundled into the CLI, where an
 * entry-point check of its own would take the CLI's arguments.
 *
 *   deno run -A scripts/hf-to-gguf.ts HF_DIR OUT.gguf        bun scripts/hf-to-gguf.ts HF_DIR OUT.gguf
 */
import { convertHFToGGUF } from "../src/convert/hf-to-gguf.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const args: string[] = g.Deno ? g.Deno.args : g.process.argv.slice(2);
if (args.length !== 2 || args.includes("--help") || args.includes("-h")) {
  console.error("usage: hf-to-gguf HF_DIR OUT.gguf   (a Hugging Face checkpoint directory, or a .safetensors beside its config.json)");
  const code = args.includes("--help") || args.includes("-h") ? 0 : 2;
  g.Deno ? g.Deno.exit(code) : g.process.exit(code);
} else {
  await convertHFToGGUF(args[0], args[1]);
}
