/**
 * Resuming an interrupted prune. After every block, {@linkcode prune} can hand its caller a
 * {@linkcode PruneCheckpoint}: what it decided (OWL's outlier ratios, the block sparsities) and the
 * counts so far, as plain JSON. Given back as `resume`, with a store that still holds the linears of
 * the finished blocks, `prune` skips the outlier pass and the finished blocks: it rebuilds the
 * calibration activations by running the windows through the finished blocks' PRUNED weights (one
 * forward pass per block, no statistics), which is what the uninterrupted walk fed the next block, so
 * on the same adapter the result is the same to the bit.
 *
 * A checkpoint names its job (`job`: the options that change the result, the model's shape, and
 * fingerprints of the calibration tokens and of two weight matrices), so that it is never applied to
 * another job. Uses no Deno API.
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { type LinearName, LINEARS } from "../model/config.ts";
import { linearWeight } from "../model/names.ts";
import type { WeightSource } from "../model/weights.ts";
import type { DampingRetry } from "./pipeline.ts";

/** The format version of {@linkcode PruneCheckpoint}. */
export const CHECKPOINT_VERSION = 1;

/** What identifies a prune job: equal identities give equal results on one adapter. */
export type PruneIdentity = Record<string, string | number>;

/**
 * The state of the pruning walk after `blocksDone` blocks, JSON-serialisable (numbers round-trip
 * exactly through JSON).
 *
 * @example Stop a prune after its first block, then resume it: the same weights as one run
 * ```ts
 * import {
 *   Gpu, MemoryByteSource, MemoryWeightStore, openLlama2c, prune, type PruneCheckpoint, type PruneOptions,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // A tiny random llama2.c checkpoint: dim 8, hidden 12, 2 layers, 2 heads, vocab 16, context 8.
 * const [D, H, L, V, S] = [8, 12, 2, 16, 8];
 * const n = V * D + L * (2 * D + 4 * D * D + 3 * H * D) + D + S * (D / 2); // f32 values after the header
 * const bytes = new Uint8Array(28 + 4 * n);
 * new Int32Array(bytes.buffer, 0, 7).set([D, H, L, 2, 2, V, S]);
 * new Float32Array(bytes.buffer, 28).set(Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1)));
 * const source = await openLlama2c(new MemoryByteSource(bytes));
 * const opts: PruneOptions = {
 *   method: "owl-wanda", sparsity: 0.5, pattern: { kind: "unstructured" }, owlM: 1, owlLambda: 0.08,
 *   calibration: [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 0]],
 * };
 *
 * const gpu = await Gpu.create();
 * const whole = await prune(gpu, source, opts);
 * let saved = ""; // where a CLI would write a file
 * const store = new MemoryWeightStore();
 * await assert.rejects(() =>
 *   prune(gpu, source, {
 *     ...opts, store,
 *     onCheckpoint: (cp) => {
 *       saved = JSON.stringify(cp);
 *       if (cp.blocksDone === 1) throw new Error("stopped"); // as a crash would
 *     },
 *   })
 * );
 * const resume: PruneCheckpoint = JSON.parse(saved);
 * const resumed = await prune(gpu, source, { ...opts, store, resume });
 * gpu.destroy();
 * assert.equal(resume.blocksDone, 1);
 * for (const name of whole.weights.names()) {
 *   assert.deepEqual(await resumed.weights.read(name), await whole.weights.read(name));
 * }
 * assert.deepEqual(resumed.blocks, whole.blocks);
 * ```
 */
export interface PruneCheckpoint {
  /** {@linkcode CHECKPOINT_VERSION}. */
  version: number;
  /** The job this is a checkpoint of ({@linkcode pruneIdentity}). */
  job: PruneIdentity;
  /** Blocks whose linears are all in the store, 0 to nBlocks. */
  blocksDone: number;
  /** The model's block count. */
  nBlocks: number;
  /**
   * The adapter the finished blocks were pruned on. Resuming on another one gives a valid prune, but
   * not the bits of an uninterrupted run on either (floating-point order differs between drivers).
   */
  adapter: string;
  /** OWL / DLP: D_l in percent per block, from the outlier pass; else null. */
  outlierRatios: number[] | null;
  /** OWL / DLP: the mean Wanda score per block, from the outlier pass; else null. */
  meanScores: number[] | null;
  /** Target sparsity per block. */
  sparsities: number[];
  /** N:M patterns: N per block; else null. */
  nPerBlock: number[] | null;
  /** OWL's mixed N:M: mean N; else null. */
  meanN: number | null;
  /** Per pruned linear so far, as in PruneResult. */
  counts: { name: string; pruned: number; expected: number; numel: number }[];
  /** Zero and total weights over the finished blocks' linears. */
  zeros: number;
  total: number;
  /** SparseGPT's damping retries so far. */
  dampingRetries: DampingRetry[];
}

/** The settings of a prune that change its result (a subset of PruneOptions, defaults resolved). */
export interface IdentitySettings {
  method: string;
  allocation: string;
  sparsity: number;
  pattern: string;
  owlM: number;
  owlLambda: number;
  beta: number;
  alpha: number;
  nmRounding: "reference" | "mass-preserving";
  percdamp: number;
  blocksize: number;
  activationDtype: "f32" | "f16";
}

/**
 * 64-bit FNV-1a of 32-bit words (two 32-bit lanes with different offsets), as 16 hex digits: a
 * fingerprint, not a cryptographic hash.
 */
export function fingerprintWords(words: Uint32Array, seed = 0): string {
  let a = (0x811c9dc5 ^ seed) >>> 0, b = (0x01000193 ^ 0x9e3779b9 ^ seed) >>> 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    a = Math.imul(a ^ w, 0x01000193) >>> 0;
    b = Math.imul(b ^ ((w >>> 16) | (w << 16)), 0x01000193) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

/**
 * The identity of a prune job: its settings, the model's configuration, and fingerprints of the
 * calibration tokens and of the first block's q and the last block's down projection (reads two
 * matrices from `source`).
 */
export async function pruneIdentity(
  source: WeightSource,
  settings: IdentitySettings,
  calibration: ArrayLike<number>[],
): Promise<PruneIdentity> {
  const c = source.config;
  const tokens = new Uint32Array(calibration.length * (calibration[0]?.length ?? 0));
  calibration.forEach((w, i) => tokens.set(Array.from(w), i * w.length));
  const weights = async (l: number, lin: LinearName) => {
    const w = await source.readF32(linearWeight(l, lin));
    return fingerprintWords(new Uint32Array(w.buffer, w.byteOffset, w.length));
  };
  return {
    ...settings,
    model: JSON.stringify(c),
    calibration: `${calibration.length} x ${calibration[0]?.length ?? 0} tokens, ${fingerprintWords(tokens)}`,
    weights: `${await weights(0, "q")} ${await weights(c.nLayers - 1, "down")}`,
  };
}

/** "key: A here, B in the checkpoint" for every key whose values differ. */
export function identityDiff(here: PruneIdentity, there: PruneIdentity): string[] {
  const keys = [...new Set([...Object.keys(here), ...Object.keys(there)])];
  return keys.filter((k) => here[k] !== there[k]).map((k) => {
    const show = (v: unknown) => v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v);
    return k === "model"
      ? "model: another model configuration"
      : `${k}: ${show(here[k])} here, ${show(there[k])} in the checkpoint`;
  });
}

const isNumbers = (v: unknown, n: number) =>
  Array.isArray(v) && v.length === n && v.every((x) => typeof x === "number" && Number.isFinite(x));

/**
 * Check that `cp` is a well-formed checkpoint of the job `job` (ArgumentError naming what differs or
 * what is malformed). `where` names the checkpoint in messages.
 */
export function checkCheckpoint(
  cp: unknown,
  job: PruneIdentity,
  nBlocks: number,
  where: string,
): PruneCheckpoint {
  const bad = (why: string) =>
    new ArgumentError(`${where} cannot be resumed: ${why}; remove it to start the job over`);
  if (typeof cp !== "object" || cp === null) throw bad("it is not a checkpoint object");
  const c = cp as Partial<PruneCheckpoint>;
  if (c.version !== CHECKPOINT_VERSION) {
    throw bad(`it has format version ${JSON.stringify(c.version)}, this owlgpu reads ${CHECKPOINT_VERSION}`);
  }
  if (typeof c.job !== "object" || c.job === null) throw bad("it names no job");
  const diff = identityDiff(job, c.job);
  if (diff.length) throw bad(`it belongs to another job (${diff.join("; ")})`);
  if (c.nBlocks !== nBlocks) throw bad(`it has ${c.nBlocks} blocks, the model ${nBlocks}`);
  if (typeof c.adapter !== "string") throw bad("it names no adapter");
  const done = c.blocksDone;
  if (!(Number.isInteger(done) && done! >= 0 && done! <= nBlocks)) throw bad(`blocksDone is ${done}`);
  if (!isNumbers(c.sparsities, nBlocks)) throw bad("its block sparsities are malformed");
  for (const k of ["outlierRatios", "meanScores", "nPerBlock"] as const) {
    if (c[k] !== null && !isNumbers(c[k], nBlocks)) throw bad(`its ${k} are malformed`);
  }
  if (c.meanN !== null && typeof c.meanN !== "number") throw bad("its meanN is malformed");
  const counts = c.counts;
  const countOk = (x: PruneCheckpoint["counts"][number]) =>
    typeof x?.name === "string" && [x.pruned, x.expected, x.numel].every(Number.isInteger);
  if (!Array.isArray(counts) || !counts.every(countOk)) throw bad("its counts are malformed");
  if (counts.length !== 0 && counts.length !== done! * LINEARS.length) {
    throw bad(`it counts ${counts.length} linears for ${done} finished blocks`);
  }
  if (!Number.isInteger(c.zeros) || !Number.isInteger(c.total)) throw bad("its zero counts are malformed");
  if (!Array.isArray(c.dampingRetries)) throw bad("its damping retries are malformed");
  return c as PruneCheckpoint;
}
