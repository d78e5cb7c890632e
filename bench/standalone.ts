/**
 * The standalone kernel modules of the bench/*.bench.ts scripts: an AssemblyScript entry (bench/<name>/kernels.ts,
 * which imports what it needs from assembly/) compiled in seconds with asc (stub runtime, imported memory, -O3) into a
 * fresh temporary folder, relaxed SIMD (RELAXED=1) or plain (RELAXED=0), so that candidates and today's kernels are
 * measured from one module. asc runs outside the repository: its asconfig.json's --converge would cost minutes.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const root = new URL("..", import.meta.url).pathname;

/** Compiles `entry` (an absolute path) and returns the .wasm file's path; removeStandalone(it) deletes its folder. */
export function compileStandalone(entry: string, relaxed: boolean, tmpPrefix = "kvasm-bench-"): string {
  const wasmFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), tmpPrefix)), "k.wasm");
  const asc = spawnSync(path.join(root, "node_modules/.bin/asc"), [
    entry,
    ...["--runtime", "stub", "--importMemory", "-O3", "--noAssert", "--enable", "simd"],
    ...(relaxed ? ["--enable", "relaxed-simd", "--use", "RELAXED=1"] : ["--use", "RELAXED=0"]),
    ...["-o", wasmFile],
  ], { encoding: "utf8", cwd: os.tmpdir() });
  if (asc.status !== 0) throw new Error(`asc failed:\n${asc.stderr}`);
  return wasmFile;
}

/** Deletes the temporary folder of a module compileStandalone made. */
export function removeStandalone(wasmFile: string): void {
  fs.rmSync(path.dirname(wasmFile), { recursive: true });
}
