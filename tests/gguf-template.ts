/** A real GGUF rewritten with `tokenizer.chat_template` set: what the chat-template tests feed the server and the CLI. */
import * as fs from "node:fs";
import { BytesSink, writeGGUF } from "../src/formats/gguf-writer.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { BytesSource } from "../src/io/source.ts";

/** The GGUF at `path` with its metadata and tensors as they are, plus `tokenizer.chat_template` = template. */
export async function withTemplate(path: string, template: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(fs.readFileSync(path));
  const file = await readGGUF(new BytesSource(bytes, path));
  const metadata = [...file.metadata].map(([key, value]) => ({ key, type: file.metadataTypes.get(key)!, value }));
  metadata.push({ key: "tokenizer.chat_template", type: { type: "string" }, value: template });
  const tensors = [...file.tensors.values()].map((t) => ({
    name: t.name,
    type: t.type,
    shape: t.shape,
    data: bytes.subarray(t.offset, t.offset + t.byteLength),
  }));
  const sink = new BytesSink();
  await writeGGUF(sink, metadata, tensors);
  return sink.bytes();
}
