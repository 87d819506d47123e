// Runs a wasm32-wasip1 program (a cargo test binary) under Node's WASI, as cargo's runner:
//   node tests/cross/wasi-run.mjs PROGRAM.wasm [ARGS...]
// The current directory is preopened as ".". Exits with the program's status, or 134 when it
// traps: Rust panics abort on wasm, so a failing test ends the run (pass --nocapture to see
// its message).
import { readFile } from "node:fs/promises";
import process from "node:process";
import { WASI } from "node:wasi";

process.removeAllListeners("warning"); // "WASI is an experimental feature"
const [program, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: [program, ...args],
  env: process.env,
  preopens: { ".": process.cwd() },
  returnOnExit: true,
});
try {
  const module = await WebAssembly.compile(await readFile(program));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  process.exitCode = wasi.start(instance);
} catch (e) {
  console.error(`${program}: ${e instanceof WebAssembly.RuntimeError ? "trapped: " : ""}${e.message}`);
  process.exitCode = 134;
}
