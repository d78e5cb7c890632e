/**
 * A deployable edge function serving the OpenAI-compatible API.
 *
 * Deno Deploy:    deployctl deploy --entrypoint examples/edge/main.ts --env KVASM_MODEL_URL=https://.../stories260K.gguf
 * Supabase Edge:  copy this file to supabase/functions/kvasm/index.ts (with dist/kvasm-edge.mjs beside it)
 * Workers-style:  `export default` below is the `{ fetch }` module such hosts call.
 *
 * The model is streamed from KVASM_MODEL_URL into the arena on the first request
 * (never held twice in memory); requests run on this isolate's one thread.
 * Set KVASM_API_KEY to require `Authorization: Bearer <key>`.
 * Local run:      KVASM_MODEL_URL=http://127.0.0.1:8000/stories260K.gguf deno serve -A examples/edge/main.ts
 */
import edge from "../../dist/kvasm-edge.mjs";

export default edge;
