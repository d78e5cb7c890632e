// npm install builds the kernels, so a fresh clone is ready after one command.
await import("./build-kernels.mjs");
