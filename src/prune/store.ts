/**
 * Where {@linkcode prune} puts each pruned linear as soon as its block is done, and where the
 * evaluation and the export read them back. The default keeps them in memory; a store on disk
 * ({@linkcode FileWeightStore}, Deno) keeps host memory to one linear, which is what lets a 7B model
 * (26 GB of block linears in f32) be pruned on a host with less memory than that.
 *
 * The codec here (a bitmap of the nonzero words, then those words) is exact to the bit, -0 and all,
 * and stores a weight pruned to 50% in 53% of its f32 bytes.
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { type LinearName, LINEARS } from "../model/config.ts";
import { linearWeight } from "../model/names.ts";

/**
 * Pruned weights by canonical tensor name, f32 [C_out, C_in], read back one at a time.
 *
 * @example The in-memory store: what prune() uses by default
 * ```ts
 * import { MemoryWeightStore } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const store = new MemoryWeightStore();
 * await store.put("model.layers.0.self_attn.q_proj.weight", new Float32Array([0, 1.5, 0, -2]));
 * assert.deepEqual(store.names(), ["model.layers.0.self_attn.q_proj.weight"]);
 * assert.deepEqual(await store.read("model.layers.0.self_attn.q_proj.weight"), new Float32Array([0, 1.5, 0, -2]));
 * assert.equal(store.has("lm_head.weight"), false);
 * store.close();
 * ```
 */
export interface PrunedWeights {
  /** Names in the order they were stored. */
  names(): string[];
  /** Whether `name` is stored. */
  has(name: string): boolean;
  /** The weights stored as `name` (a new array); ArgumentError when there are none. */
  read(name: string): Promise<Float32Array>;
}

/** A {@linkcode PrunedWeights} that {@linkcode prune} can fill. Its creator closes it. */
export interface PrunedWeightStore extends PrunedWeights {
  /** Store `w` as `name` (a name may be stored once). The store keeps its own copy. */
  put(name: string, w: Float32Array): Promise<void>;
  /** Free what the store holds (memory, or its file). Reads fail afterwards. */
  close(): void;
}

/** Block l's 7 pruned linears, read from `weights` (for `GpuModel.loadBlock`). */
export async function readBlockLinears(
  weights: PrunedWeights,
  l: number,
): Promise<Record<LinearName, Float32Array>> {
  const block = {} as Record<LinearName, Float32Array>;
  for (const lin of LINEARS) block[lin] = await weights.read(linearWeight(l, lin));
  return block;
}

/** The weights of one name: an ArgumentError when absent, so a typo never reads as "no override". */
export function missingWeight(name: string, where: string): ArgumentError {
  return new ArgumentError(`${where}: no pruned weights are stored as ${name}`);
}

/** Pruned weights held in host memory (f32): the default of {@linkcode prune}, and the browser's. */
export class MemoryWeightStore implements PrunedWeightStore {
  #map: Map<string, Float32Array> | undefined = new Map();

  #closed(): ArgumentError {
    return new ArgumentError("MemoryWeightStore: the store is closed");
  }

  #open(): Map<string, Float32Array> {
    if (!this.#map) throw this.#closed();
    return this.#map;
  }

  names(): string[] {
    return [...this.#open().keys()];
  }

  has(name: string): boolean {
    return this.#open().has(name);
  }

  /** The stored array itself, without a copy (in-memory callers that only read it). */
  get(name: string): Float32Array | undefined {
    return this.#open().get(name);
  }

  read(name: string): Promise<Float32Array> {
    if (!this.#map) return Promise.reject(this.#closed());
    const w = this.#map.get(name);
    return w ? Promise.resolve(w.slice()) : Promise.reject(missingWeight(name, "MemoryWeightStore"));
  }

  put(name: string, w: Float32Array): Promise<void> {
    const map = this.#map;
    if (!map) return Promise.reject(this.#closed());
    if (map.has(name)) {
      return Promise.reject(new ArgumentError(`MemoryWeightStore: ${name} is already stored`));
    }
    map.set(name, w.slice());
    return Promise.resolve();
  }

  close(): void {
    this.#map = undefined;
  }
}

/**
 * Encode `w` without its zero words: a bitmap with bit i set when word i is not +0 (-0 is kept),
 * then the words whose bits are set, all little-endian u32. Exact to the bit.
 *
 * @example Half zeros: 2 bitmap words and 32 values for 64 weights, decoded bit for bit
 * ```ts
 * import { decodeZeroSkipping, encodeZeroSkipping } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const w = Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? 0 : i + 1));
 * w[1] = -0;
 * const bytes = encodeZeroSkipping(w);
 * assert.equal(bytes.length, 4 * (2 + 33)); // 33 kept: 32 values and the -0
 * const back = decodeZeroSkipping(bytes, w.length);
 * assert.deepEqual(new Uint32Array(back.buffer), new Uint32Array(w.buffer));
 * ```
 */
export function encodeZeroSkipping(w: Float32Array): Uint8Array {
  const n = w.length;
  const bits = new Int32Array(w.buffer, w.byteOffset, n);
  const words = Math.ceil(n / 32);
  const out = new Int32Array(words + n); // the most it can take; trimmed below
  let k = words;
  // Branch-free: every word is written, and the cursor advances past the nonzero ones (about half
  // are zero after pruning, a branch on each would be mispredicted half the time).
  for (let base = 0, wi = 0; base < n; base += 32, wi++) {
    const end = Math.min(32, n - base);
    let mask = 0;
    for (let j = 0; j < end; j++) {
      const b = bits[base + j];
      const nonzero = (b | -b) >>> 31;
      out[k] = b;
      k += nonzero;
      mask |= nonzero << j;
    }
    out[wi] = mask;
  }
  return new Uint8Array(out.buffer.slice(0, 4 * k));
}

/**
 * The inverse of {@linkcode encodeZeroSkipping} for `n` weights. Throws ArgumentError when the
 * bytes do not hold what their bitmap says (a corrupt or truncated record).
 */
export function decodeZeroSkipping(bytes: Uint8Array, n: number): Float32Array {
  if (!(Number.isSafeInteger(n) && n >= 0)) {
    throw new ArgumentError(`decodeZeroSkipping: n must be an integer >= 0, got ${n}`);
  }
  const words = Math.ceil(n / 32);
  if (bytes.length % 4 !== 0 || bytes.length < 4 * words) {
    throw new ArgumentError(`zero-skipping record of ${bytes.length} bytes cannot hold ${n} weights`);
  }
  const u = bytes.byteOffset % 4 === 0
    ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
    : new Int32Array(bytes.slice().buffer);
  const out = new Int32Array(n);
  const last = u.length - 1;
  let k = words;
  // Branch-free, as in encoding; the read index is clamped so that a record with too few values
  // reads no further than its end (the count check below refuses it).
  for (let base = 0, wi = 0; base < n; base += 32, wi++) {
    const end = Math.min(32, n - base);
    const mask = u[wi];
    for (let j = 0; j < end; j++) {
      const bit = (mask >>> j) & 1;
      out[base + j] = u[k < last ? k : last] & -bit;
      k += bit;
    }
  }
  if (k !== u.length || !bitmapClearAfter(u, n)) {
    throw new ArgumentError(
      `zero-skipping record of ${bytes.length} bytes does not match its bitmap for ${n} weights`,
    );
  }
  return new Float32Array(out.buffer);
}

/** Whether the bitmap's bits past weight n-1 are clear (a record for n weights sets none of them). */
function bitmapClearAfter(u: Int32Array, n: number): boolean {
  const words = Math.ceil(n / 32);
  return n % 32 === 0 || (u[words - 1] >>> (n % 32)) === 0;
}
