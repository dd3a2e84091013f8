/**
 * Calibration and evaluation windows over a tokenized corpus (docs/PROTOCOL.md).
 *
 * - Calibration: `nsamples` windows of `seqlen` tokens; window i (0-based) starts at
 *   `floor(i * (T - seqlen) / nsamples)`, T being the token count, so they spread evenly over
 *   the corpus (they may overlap when the corpus is short).
 * - Evaluation: non-overlapping windows of `seqlen` tokens from the start, the last partial one
 *   dropped, at most `maxWindows` of them.
 *
 * Windows are fresh copies, so callers may modify them.
 * @module
 */
import { ArgumentError, CorpusError } from "../errors.ts";

/**
 * Token ids as produced by `tokenizeCorpus` (Int32Array) or `Tokenizer.encode` (number[]).
 *
 * @example Both forms give the same windows
 * ```ts
 * import { evalWindows, type TokenIds } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const fromEncode: TokenIds = [1, 5, 9, 13, 17];
 * const fromCorpus: TokenIds = Int32Array.from(fromEncode);
 * assert.deepEqual(evalWindows(fromEncode, 2), evalWindows(fromCorpus, 2));
 * assert.deepEqual(evalWindows(fromEncode, 2), [Int32Array.of(1, 5), Int32Array.of(9, 13)]);
 * ```
 */
export type TokenIds = Int32Array | readonly number[];

function checkInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new ArgumentError(`${name} must be an integer >= ${min}, got ${value}`);
  }
}

function checkLength(tokens: TokenIds, seqlen: number): void {
  if (tokens.length < seqlen) {
    throw new CorpusError(
      `the corpus has ${tokens.length} token${
        tokens.length === 1 ? "" : "s"
      }, but one window needs ${seqlen}: use a longer text or a smaller seqlen`,
    );
  }
}

/**
 * `make()` (windows of one corpus), its CorpusError prefixed with `what`, so that a caller reading
 * more than one corpus says which is short.
 */
export function namingCorpus<T>(what: string, make: () => T): T {
  try {
    return make();
  } catch (e) {
    if (e instanceof CorpusError) throw new CorpusError(`${what}: ${e.message}`, { cause: e });
    throw e;
  }
}

function window(tokens: TokenIds, start: number, seqlen: number): Int32Array {
  return tokens instanceof Int32Array
    ? tokens.slice(start, start + seqlen)
    : Int32Array.from(tokens.slice(start, start + seqlen));
}

/**
 * Start of calibration window i of nsamples over `total` tokens: `floor(i * (total - seqlen) / nsamples)`.
 *
 * @example Where the 3 windows of 4 tokens over 10 tokens start
 * ```ts
 * import { calibrationStart, calibrationWindows } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const starts = [0, 1, 2].map((i) => calibrationStart(i, 10, 3, 4));
 * assert.deepEqual(starts, [0, 2, 4]); // floor(i * 6 / 3)
 * const tokens = Int32Array.from({ length: 10 }, (_, i) => 100 + i);
 * const windows = calibrationWindows(tokens, 3, 4);
 * windows.forEach((w, i) => assert.deepEqual(w, tokens.slice(starts[i], starts[i] + 4)));
 * ```
 */
export function calibrationStart(i: number, total: number, nsamples: number, seqlen: number): number {
  return Math.floor((i * (total - seqlen)) / nsamples);
}

/** Most calibration tokens (nsamples x seqlen) `calibrationWindows` takes: 2^28, 1 GiB of ids. */
const MAX_CALIBRATION_TOKENS = 2 ** 28;

/**
 * The protocol's calibration windows.
 * @throws {ArgumentError} when nsamples is not a positive integer, seqlen is below 2, or the
 * windows would hold more than 2^28 tokens (a typo, not a calibration set)
 * @throws {CorpusError} when the corpus is shorter than one window
 *
 * @example
 * ```ts
 * import { ArgumentError, calibrationWindows } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tokens = Int32Array.from({ length: 10 }, (_, i) => i);
 * const w = calibrationWindows(tokens, 3, 4);
 * assert.deepEqual(w.map((x) => x[0]), [0, 2, 4]); // floor(i * (10 - 4) / 3)
 * assert.deepEqual(w[2], Int32Array.of(4, 5, 6, 7));
 * assert.throws(() => calibrationWindows(tokens, 1e9, 4), ArgumentError); // 4e9 tokens
 * ```
 */
export function calibrationWindows(tokens: TokenIds, nsamples: number, seqlen: number): Int32Array[] {
  checkInteger("nsamples", nsamples, 1);
  checkInteger("seqlen", seqlen, 2);
  if (nsamples * seqlen > MAX_CALIBRATION_TOKENS) {
    // A typo such as --nsamples 1000000000 would otherwise exhaust memory before anything runs.
    throw new ArgumentError(
      `nsamples ${nsamples} x seqlen ${seqlen} = ${nsamples * seqlen} calibration tokens exceeds ` +
        `${MAX_CALIBRATION_TOKENS}; the published setups use 128 x 2048`,
    );
  }
  checkLength(tokens, seqlen);
  return Array.from(
    { length: nsamples },
    (_, i) => window(tokens, calibrationStart(i, tokens.length, nsamples, seqlen), seqlen),
  );
}

/**
 * The protocol's evaluation windows: `tokens[k * seqlen, (k + 1) * seqlen)` for k = 0, 1, ...
 * while a whole window fits, at most `maxWindows` (default: all).
 * @throws {ArgumentError} when seqlen is below 2 or maxWindows is not a positive integer
 * @throws {CorpusError} when the corpus is shorter than one window
 *
 * @example
 * ```ts
 * import { evalWindows } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const w = evalWindows(Int32Array.from({ length: 10 }, (_, i) => i), 4);
 * assert.deepEqual(w.map((x) => x[0]), [0, 4]); // tokens 8 and 9 do not fill a window
 * assert.equal(evalWindows(Int32Array.from({ length: 10 }, (_, i) => i), 4, 1).length, 1);
 * ```
 */
export function evalWindows(tokens: TokenIds, seqlen: number, maxWindows?: number): Int32Array[] {
  checkInteger("seqlen", seqlen, 2);
  if (maxWindows !== undefined) checkInteger("maxWindows", maxWindows, 1);
  checkLength(tokens, seqlen);
  const count = Math.min(Math.floor(tokens.length / seqlen), maxWindows ?? Infinity);
  return Array.from({ length: count }, (_, k) => window(tokens, k * seqlen, seqlen));
}
