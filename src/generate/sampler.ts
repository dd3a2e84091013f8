/**
 * Next-token sampling on the host from one row of logits: greedy (temperature 0), or softmax at
 * a temperature with optional nucleus (top-p) truncation, driven by a seeded generator so a run
 * is reproducible. Float64 throughout; pure, no GPU.
 * @module
 */
import { ArgumentError } from "../errors.ts";

/**
 * Options of a {@linkcode Sampler}.
 *
 * @example Nucleus sampling at top-p 0.6 from probabilities 0.5, 0.3, 0.2: token 2 is never drawn
 * ```ts
 * import { Sampler, type SamplerOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const options: SamplerOptions = { temperature: 1, topP: 0.6, seed: 7 };
 * const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
 * const a = new Sampler(options), b = new Sampler(options);
 * const draws = Array.from({ length: 200 }, () => a.sample(logits));
 * assert.deepEqual(draws, Array.from({ length: 200 }, () => b.sample(logits))); // same seed, same draws
 * assert.ok(!draws.includes(2)); // the nucleus is {0, 1}: 0.5 < 0.6 <= 0.5 + 0.3
 * assert.ok(draws.includes(0) && draws.includes(1));
 * ```
 */
export interface SamplerOptions {
  /** 0 = greedy (argmax, ties to the lower id). Default 1. */
  temperature?: number;
  /** Keep the smallest set of tokens whose probability reaches topP (1 = all). Default 0.9. */
  topP?: number;
  /** Seed of the generator (default 42). */
  seed?: number;
}

/**
 * mulberry32: a small, fast, seeded generator of floats in [0, 1).
 *
 * @example Reproducible uniform draws
 * ```ts
 * import { seededRandom } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const a = seededRandom(42), b = seededRandom(42);
 * const xs = Array.from({ length: 10000 }, () => a());
 * assert.deepEqual(xs, Array.from({ length: 10000 }, () => b())); // same seed, same sequence
 * assert.notEqual(seededRandom(43)(), xs[0]);
 * assert.ok(xs.every((x) => x >= 0 && x < 1));
 * assert.ok(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5) < 0.01); // mean of U[0, 1)
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Index of the largest value; the lowest index among equals.
 *
 * @example Greedy choice from a row of logits
 * ```ts
 * import { argmax } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(argmax(new Float32Array([-1.5, 2.25, 0, 2.25])), 1); // a tie goes to the lower index
 * assert.equal(argmax([-3, -2, -7]), 1);
 * ```
 */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * Picks next tokens from logits on the host: greedy at temperature 0, otherwise softmax sampling with nucleus
 * (top-p) truncation, from a seeded generator so runs are reproducible.
 *
 * @example Greedy, then sampling that follows the softmax
 * ```ts
 * import { Sampler } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)]; // softmax: 0.5, 0.3, 0.2
 * assert.equal(new Sampler({ temperature: 0 }).sample(logits), 0); // greedy: the argmax
 * const sampler = new Sampler({ temperature: 1, topP: 1, seed: 3 }); // topP 1: no truncation
 * const counts = [0, 0, 0];
 * for (let i = 0; i < 20000; i++) counts[sampler.sample(logits)]++;
 * [0.5, 0.3, 0.2].forEach((p, id) => assert.ok(Math.abs(counts[id] / 20000 - p) < 0.015));
 * ```
 */
export class Sampler {
  /** Softmax temperature (0 = greedy). */
  readonly temperature: number;
  /** Nucleus mass kept (1 = all tokens). */
  readonly topP: number;
  private readonly random: () => number;

  /**
   * Create a sampler; throws {@linkcode ArgumentError} for a negative or non-finite temperature, a top-p
   * outside (0, 1] or a seed that is not an integer in [0, 2^32).
   */
  constructor(opts: SamplerOptions = {}) {
    this.temperature = opts.temperature ?? 1;
    this.topP = opts.topP ?? 0.9;
    if (!(this.temperature >= 0 && Number.isFinite(this.temperature))) {
      throw new ArgumentError(`temperature must be a finite number >= 0, got ${opts.temperature}`);
    }
    if (!(this.topP > 0 && this.topP <= 1)) {
      throw new ArgumentError(`top-p must be in (0, 1], got ${opts.topP}`);
    }
    const seed = opts.seed ?? 42;
    if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
      // The generator keeps 32 bits: other seeds would silently repeat another seed's draws.
      throw new ArgumentError(`seed must be an integer in [0, 2^32), got ${opts.seed}`);
    }
    this.random = seededRandom(seed);
  }

  /**
   * The generator's next `n` numbers as f32 in [0, 1) (never rounded up to 1): the random inputs
   * of sampling on the device (`sampleToken`), one a token.
   *
   * @example The same seed gives the same numbers
   * ```ts
   * import { Sampler } from "@owlgpu/owlgpu";
   * import assert from "node:assert/strict";
   *
   * const a = new Sampler({ seed: 5 }).draws(3), b = new Sampler({ seed: 5 }).draws(3);
   * assert.deepEqual(a, b);
   * assert.ok(a.every((r) => r >= 0 && r < 1));
   * ```
   */
  draws(n: number): Float32Array {
    return Float32Array.from({ length: n }, () => Math.min(this.random(), 1 - 2 ** -24));
  }

  /** Pick the next token id from one row of logits. */
  sample(logits: ArrayLike<number>): number {
    if (this.temperature === 0) return argmax(logits);
    const n = logits.length;
    let mx = -Infinity;
    for (let i = 0; i < n; i++) mx = Math.max(mx, logits[i]);
    const p = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += p[i] = Math.exp((logits[i] - mx) / this.temperature);
    for (let i = 0; i < n; i++) p[i] /= sum;
    const r = this.random();
    if (this.topP >= 1) return pick(p, Array.from({ length: n }, (_, i) => i), 1, r);
    // Nucleus: candidates in descending probability (ties by id), cut where the mass reaches topP.
    const cutoff = (1 - this.topP) / (n - 1 || 1); // cannot be in the nucleus below this
    const ids: number[] = [];
    for (let i = 0; i < n; i++) if (p[i] >= cutoff) ids.push(i);
    ids.sort((a, b) => p[b] - p[a] || a - b);
    let mass = 0, last = ids.length - 1;
    for (let k = 0; k < ids.length; k++) {
      mass += p[ids[k]];
      if (mass >= this.topP) {
        last = k;
        break;
      }
    }
    const kept = ids.slice(0, last + 1);
    let keptMass = 0;
    for (const i of kept) keptMass += p[i];
    return pick(p, kept, keptMass, r);
  }
}

function pick(p: Float64Array, ids: number[], mass: number, r: number): number {
  const target = r * mass;
  let c = 0;
  for (const i of ids) {
    c += p[i];
    if (target < c) return i;
  }
  return ids[ids.length - 1];
}
