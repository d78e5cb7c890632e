import { assert, assertEquals, assertRejects, test } from "./harness.ts";
import { ParamError } from "../src/errors.ts";
import { StopMatcher } from "../src/sampling/stop.ts";

/** Pushes every chunk, then flushes; returns what was emitted per push, the flush, and whether it stopped. */
function run(stops: string[], chunks: string[]) {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  let stopped = false;
  for (const c of chunks) {
    const r = m.push(c);
    emits.push(r.emit);
    stopped ||= r.stopped;
  }
  return { emits, flushed: m.flush(), stopped, text: emits.join(""), matched: m.matched };
}

test("a stop string split across pushes: 'Hel' + 'lo wor' + 'ld' with stop 'o w'", () => {
  const r = run(["o w"], ["Hel", "lo wor", "ld"]);
  assertEquals(r.emits, ["Hel", "l", ""]);
  assertEquals(r.stopped, true);
  assertEquals(r.flushed, "");
  assertEquals(r.matched, "o w");
});

test("a stop string completed one character per push", () => {
  const text = "say hello world";
  const r = run(["o w"], [...text]);
  assertEquals(r.text, "say hell");
  assertEquals(r.stopped, true);
});

test("held-back text is released as soon as it can no longer match", () => {
  const m = new StopMatcher(["o w"]);
  assertEquals(m.push("Hello"), { emit: "Hell", stopped: false });
  assertEquals(m.push(" "), { emit: "", stopped: false }); // "o " still the start of "o w"
  assertEquals(m.push("x"), { emit: "o x", stopped: false });
  assertEquals(m.flush(), "");
});

test("flush releases the held tail at the end of generation", () => {
  const m = new StopMatcher(["</s>", "###"]);
  assertEquals(m.push("done <"), { emit: "done ", stopped: false });
  assertEquals(m.push("/"), { emit: "", stopped: false });
  assertEquals(m.flush(), "</");
  assertEquals(m.flush(), "", "flush empties the buffer");
  assertEquals(m.stopped, false);
});

test("no false holds: text that cannot start a stop string passes through whole", () => {
  const r = run(["STOP", "\n\n"], ["Hi there", ", all ", "good.\n", "x"]);
  assertEquals(r.emits, ["Hi there", ", all ", "good.", "\nx"]);
  assertEquals(r.stopped, false);
  assertEquals(r.flushed, "");
  // A character that occurs inside a stop string but not at its start is not held either.
  assertEquals(new StopMatcher(["STOP"]).push("TOP"), { emit: "TOP", stopped: false });
});

test("multiple stops: the first to complete wins, whatever the chunking", () => {
  const stops = ["abcd", "bc", "xyz"];
  // "bc" completes (at 'c') before "abcd" could, so generation stops there.
  for (const chunks of [["abcd"], ["ab", "cd"], ["a", "b", "c", "d"], ["zzab", "c"]]) {
    const r = run(stops, chunks);
    assert(r.stopped, `stops on ${JSON.stringify(chunks)}`);
    assertEquals(r.matched, "bc", JSON.stringify(chunks));
    assertEquals(r.text, chunks.join("").slice(0, chunks.join("").indexOf("bc")), JSON.stringify(chunks));
  }
  // Two stops ending together: the one that starts first decides what is emitted.
  const tie = run(["lo", "ello"], ["Hello there"]);
  assertEquals(tie.text, "H");
  assertEquals(tie.matched, "ello");
  const other = run(["END", "\n"], ["line one", "\nline two END"]);
  assertEquals(other.text, "line one");
  assertEquals(other.matched, "\n");
});

test("after a stop every push emits nothing", () => {
  const m = new StopMatcher(["!"]);
  assertEquals(m.push("hi! more"), { emit: "hi", stopped: true });
  assertEquals(m.push("and more"), { emit: "", stopped: true });
  assertEquals(m.flush(), "");
  assertEquals(m.stopped, true);
});

test("no stop strings: everything is emitted immediately", () => {
  const r = run([], ["a", "bc", ""]);
  assertEquals(r.emits, ["a", "bc", ""]);
  assertEquals(r.stopped, false);
});

test("a stop that is a prefix of another, and overlapping candidates", () => {
  // "aab": after "aa" the tail "aa" could start "aab"; then "a" + "b" completes it.
  const r = run(["aab"], ["xa", "a", "aab"]);
  assertEquals(r.text, "xaa");
  assertEquals(r.stopped, true);
  const prefix = run(["<|im_end|>", "<|"], ["text <", "|im"]);
  assertEquals(prefix.text, "text ");
  assertEquals(prefix.matched, "<|");
});

test("empty stop strings are refused as a ParamError on 'stop'", async () => {
  const e = await assertRejects(() => new StopMatcher(["ok", ""]), ParamError);
  assertEquals((e as ParamError).param, "stop");
});

test("90,000 stop strings match as the one among them that occurs, chunking aside", () => {
  const many = Array.from({ length: 90_000 }, (_, i) => `q${i}z`);
  many.push("o w", "wor", "xyz");
  const text = "say hello world and more";
  for (const chunks of [[text], [...text], ["say hel", "lo w", "orld and more"]]) {
    const r = run(many, chunks);
    assertEquals([r.text, r.stopped, r.matched], ["say hell", true, "o w"]);
  }
  const none = run(many, ["q1", "2", "3", "4", "q"]); // "q1234q" completes none, though every prefix could start one
  assertEquals([none.text + none.flushed, none.stopped], ["q1234q", false]);
});
