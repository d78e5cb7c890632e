// Compiles assembly/ into the four kernel builds listed in asconfig.json:
// plain SIMD and relaxed SIMD, each for a private and for a shared memory.
// The relaxed variants see RELAXED = 1 (assembly/features.ts) and use the fused ops.
// Builds run as parallel processes, one per core (asc is single-threaded).
import { readFileSync, mkdirSync } from "node:fs";
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const config = JSON.parse(readFileSync(new URL("../asconfig.json", import.meta.url), "utf8"));
mkdirSync(new URL("../build", import.meta.url), { recursive: true });
const only = process.argv.slice(2);
const targets = Object.keys(config.targets).filter((t) => !only.length || only.includes(t));
const asc = fileURLToPath(new URL("../node_modules/assemblyscript/bin/asc.js", import.meta.url));

function build(target) {
  const relaxed = config.targets[target].enable?.includes("relaxed-simd") ?? false;
  const args = [asc, "--config", "asconfig.json", "--target", target, "--use", `RELAXED=${relaxed ? 1 : 0}`];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
    p.on("exit", (code) => {
      if (code === 0) {
        console.log(`built ${config.targets[target].outFile}`);
        resolve();
      } else reject(new Error(`kernel build ${target} failed (exit ${code})`));
    });
  });
}

const queue = [...targets];
const lanes = Array.from({ length: Math.max(1, Math.min(availableParallelism(), queue.length)) }, async () => {
  while (queue.length) await build(queue.shift());
});
try {
  await Promise.all(lanes);
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
