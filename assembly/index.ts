// The kernel module's exports. Every kernel is a pure function over pointers
// into the one linear memory that the TypeScript side owns and imports here.
export * from "./f32";
export * from "./quant";
export * from "./kv";
export * from "./nn";
export * from "./kv16";
export * from "./variants";
export * from "./lanes-q8_0";
export * from "./lanes-q4_0";
export * from "./lanes-kquant";
export * from "./lanes-q6_k";
export * from "./attn-stream";
export * from "./lanes-q8_0-vnni";
export * from "./lanes-q8_0-nib";
export * from "./attn-run";
