/**
 * Calibration and evaluation windows: start positions on hand-computed cases, contents, copies,
 * and the errors for short corpora and bad arguments.
 * @module
 */
import assert from "node:assert/strict";
import { calibrationStart, calibrationWindows, evalWindows } from "../src/data/windows.ts";
import { ArgumentError, CorpusError } from "../src/errors.ts";

const range = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
const starts = (windows: Int32Array[]) => windows.map((w) => w[0]);

Deno.test("calibration windows start at floor(i * (T - seqlen) / nsamples)", () => {
  assert.deepEqual(starts(calibrationWindows(range(10), 3, 4)), [0, 2, 4]); // 6/3 = 2 exactly
  assert.deepEqual(starts(calibrationWindows(range(11), 3, 4)), [0, 2, 4]); // 7/3, 14/3 floored
  assert.deepEqual(starts(calibrationWindows(range(100), 7, 16)), [0, 12, 24, 36, 48, 60, 72]);
  assert.deepEqual(starts(calibrationWindows(range(5), 4, 5)), [0, 0, 0, 0]); // T == seqlen
  // The protocol's defaults on the real corpus size: 128 windows of 256 over 2,352,833 tokens.
  assert.equal(calibrationStart(1, 2_352_833, 128, 256), 18_379); // 2352577 / 128 = 18379.5...
  assert.equal(calibrationStart(127, 2_352_833, 128, 256), 2_334_197); // 127 * 2352577 / 128 = 2334197.3...
  for (const w of calibrationWindows(range(1000), 9, 37)) {
    assert.equal(w.length, 37);
    assert.deepEqual(w, range(1000).slice(w[0], w[0] + 37));
  }
});

Deno.test("evaluation windows: non-overlapping from the start, last partial dropped", () => {
  assert.deepEqual(evalWindows(range(10), 4), [Int32Array.of(0, 1, 2, 3), Int32Array.of(4, 5, 6, 7)]);
  assert.deepEqual(starts(evalWindows(range(12), 4)), [0, 4, 8]);
  assert.deepEqual(starts(evalWindows(range(12), 4, 2)), [0, 4]);
  assert.deepEqual(starts(evalWindows(range(12), 4, 100)), [0, 4, 8]);
  assert.deepEqual(starts(evalWindows([7, 8, 9], 3)), [7]); // number[] input
});

Deno.test("windows are copies", () => {
  const tokens = range(8);
  const [w] = evalWindows(tokens, 4);
  w[0] = 99;
  assert.equal(tokens[0], 0);
  const [c] = calibrationWindows([1, 2, 3], 1, 2);
  assert.ok(c instanceof Int32Array);
});

Deno.test("windows: short corpora and bad arguments", () => {
  for (const f of [() => calibrationWindows(range(3), 2, 4), () => evalWindows(range(3), 4)]) {
    assert.throws(f, (e: Error) => {
      assert.ok(e instanceof CorpusError);
      assert.match(e.message, /has 3 tokens, but one window needs 4/);
      return true;
    });
  }
  for (const nsamples of [0, -1, 1.5, NaN]) {
    assert.throws(() => calibrationWindows(range(10), nsamples, 4), ArgumentError);
  }
  assert.throws(() => calibrationWindows(range(10), 2, 1), /seqlen must be an integer >= 2, got 1/);
  assert.throws(() => evalWindows(range(10), 1), ArgumentError);
  assert.throws(() => evalWindows(range(10), 4, 0), /maxWindows must be an integer >= 1, got 0/);
});
