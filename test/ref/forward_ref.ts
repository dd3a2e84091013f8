/**
 * A plain float64 reference forward pass of a LLaMA-family decoder, the oracle the loaders,
 * the exporter and the GPU forward pass are checked against. Written for clarity: one token at a
 * time with a K/V cache, every step spelled out.
 *
 * Per block: h = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1))) with n1 = rmsnorm(x);
 * out = h + down(silu(gate(n2)) * up(n2)) with n2 = rmsnorm(h). Then final rmsnorm and LM head.
 * @module
 */
import { LINEARS, type ModelConfig } from "../../src/model/config.ts";
import {
  attnNorm,
  EMBED,
  FINAL_NORM,
  linearBias,
  linearWeight,
  LM_HEAD,
  mlpNorm,
} from "../../src/model/names.ts";
import type { WeightSource } from "../../src/model/weights.ts";
import { f32ToBytes } from "../../src/model/dtype.ts";
import { refRopeFrequency, rng } from "./kernels_ref.ts";

/** One decoder block in float64; matrices row-major [C_out, C_in]. */
export interface RefLayer {
  attnNorm: Float64Array;
  mlpNorm: Float64Array;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  o: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  down: Float64Array;
  /** q/k/v biases (Qwen2). */
  bias?: { q: Float64Array; k: Float64Array; v: Float64Array };
}

/** A whole model in float64. */
export interface RefModel {
  config: ModelConfig;
  /** [vocab, dim] */
  embed: Float64Array;
  finalNorm: Float64Array;
  /** [vocab, dim]; the same array as `embed` when tied. */
  lmHead: Float64Array;
  layers: RefLayer[];
}

/** Read every tensor of `source` into float64. */
export async function loadRefModel(source: WeightSource): Promise<RefModel> {
  const c = source.config;
  const read = async (name: string) => Float64Array.from(await source.readF32(name));
  const layers: RefLayer[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const lin = (name: Parameters<typeof linearWeight>[1]) => read(linearWeight(l, name));
    layers.push({
      attnNorm: await read(attnNorm(l)),
      mlpNorm: await read(mlpNorm(l)),
      q: await lin("q"),
      k: await lin("k"),
      v: await lin("v"),
      o: await lin("o"),
      gate: await lin("gate"),
      up: await lin("up"),
      down: await lin("down"),
      bias: c.qkvBias
        ? {
          q: await read(linearBias(l, "q")),
          k: await read(linearBias(l, "k")),
          v: await read(linearBias(l, "v")),
        }
        : undefined,
    });
  }
  const embed = await read(EMBED);
  return {
    config: c,
    embed,
    finalNorm: await read(FINAL_NORM),
    lmHead: c.tiedEmbeddings ? embed : await read(LM_HEAD),
    layers,
  };
}

/** Seeded uniform values in [-scale, scale), rounded to f32 so a model written as f32 reads back exactly. */
function randomValues(n: number, seed: number, scale: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => Math.fround((r() * 2 - 1) * scale));
}

/**
 * A random model for config `c` (norm weights near 1, matrices scaled by 1/sqrt(C_in) so
 * activations stay O(1)). Values are f32-representable.
 */
export function randomRefModel(c: ModelConfig, seed: number): RefModel {
  let s = seed;
  const rand = (n: number, scale: number) => randomValues(n, s++, scale);
  const norm = () => rand(c.dim, 0.2).map((v) => Math.fround(1 + v));
  const mat = (rows: number, cols: number) => rand(rows * cols, 1 / Math.sqrt(cols));
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
  const layers = Array.from({ length: c.nLayers }, (): RefLayer => ({
    attnNorm: norm(),
    mlpNorm: norm(),
    q: mat(qDim, c.dim),
    k: mat(kvDim, c.dim),
    v: mat(kvDim, c.dim),
    o: mat(c.dim, qDim),
    gate: mat(c.hiddenDim, c.dim),
    up: mat(c.hiddenDim, c.dim),
    down: mat(c.dim, c.hiddenDim),
    bias: c.qkvBias ? { q: rand(qDim, 0.5), k: rand(kvDim, 0.5), v: rand(kvDim, 0.5) } : undefined,
  }));
  const embed = rand(c.vocabSize * c.dim, 1);
  return {
    config: c,
    embed,
    finalNorm: norm(),
    lmHead: c.tiedEmbeddings ? embed : mat(c.vocabSize, c.dim),
    layers,
  };
}

/** An in-memory f32 WeightSource over canonical tensors (a tied LM head reads the embedding). */
export function memoryWeights(config: ModelConfig, tensors: Map<string, Float32Array>): WeightSource {
  const get = (name: string) => tensors.get(name === LM_HEAD && config.tiedEmbeddings ? EMBED : name)!;
  return {
    config,
    dtype: "f32",
    description: "memory",
    tensorNames: () => [...tensors.keys()],
    has: (name) => tensors.has(name),
    info: (name) => ({ name, dtype: "f32", shape: [get(name).length] }),
    readRaw: (name) => Promise.resolve(f32ToBytes(get(name), "f32")),
    readF32: (name) => Promise.resolve(get(name).slice()),
    close: () => {},
  };
}

/**
 * The tensors of a model under canonical names, as f32 (the inverse of loadRefModel). A tied LM
 * head is not listed.
 */
export function refModelTensors(m: RefModel): Map<string, Float32Array> {
  const c = m.config;
  const out = new Map<string, Float32Array>([[EMBED, Float32Array.from(m.embed)]]);
  m.layers.forEach((w, l) => {
    out.set(attnNorm(l), Float32Array.from(w.attnNorm));
    out.set(mlpNorm(l), Float32Array.from(w.mlpNorm));
    for (const lin of LINEARS) out.set(linearWeight(l, lin), Float32Array.from(w[lin]));
    if (w.bias) {
      for (const b of ["q", "k", "v"] as const) out.set(linearBias(l, b), Float32Array.from(w.bias[b]));
    }
  });
  out.set(FINAL_NORM, Float32Array.from(m.finalNorm));
  if (!c.tiedEmbeddings) out.set(LM_HEAD, Float32Array.from(m.lmHead));
  return out;
}

/** y = W x (+ b), W [rows, x.length]. */
function matvec(w: Float64Array, x: Float64Array, rows: number, bias?: Float64Array): Float64Array {
  const cols = x.length;
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = bias ? bias[r] : 0;
    const off = r * cols;
    for (let i = 0; i < cols; i++) s += w[off + i] * x[i];
    y[r] = s;
  }
  return y;
}

/** x / sqrt(mean(x²) + eps) * w */
function rmsnorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * w[i]);
}

/**
 * Rotate each head of `x` (nHeads × headDim) in place for position `pos`. Pair i (0 ≤ i < headDim/2)
 * turns by pos · theta^(-2i/headDim) (scaled by c.ropeScaling); it is (2i, 2i+1) interleaved,
 * (i, i + headDim/2) in "half".
 */
function rope(x: Float64Array, c: ModelConfig, pos: number): void {
  const hd = c.headDim, half = hd / 2;
  for (let h = 0; h < x.length / hd; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * refRopeFrequency(i, hd, c.ropeTheta, c.ropeScaling);
      const cos = Math.cos(angle), sin = Math.sin(angle);
      const [a, b] = c.ropeLayout === "interleaved"
        ? [h * hd + 2 * i, h * hd + 2 * i + 1]
        : [h * hd + i, h * hd + i + half];
      const x0 = x[a], x1 = x[b];
      x[a] = x0 * cos - x1 * sin;
      x[b] = x0 * sin + x1 * cos;
    }
  }
}

/** Causal attention of one query position over the cached keys/values (GQA: kv head = h / group). */
function attend(q: Float64Array, keys: Float64Array[], values: Float64Array[], c: ModelConfig): Float64Array {
  const hd = c.headDim;
  const group = c.nHeads / c.nKvHeads;
  const out = new Float64Array(c.nHeads * hd);
  for (let h = 0; h < c.nHeads; h++) {
    const kvOff = Math.floor(h / group) * hd;
    const scores = keys.map((k) => {
      let s = 0;
      for (let i = 0; i < hd; i++) s += q[h * hd + i] * k[kvOff + i];
      return s / Math.sqrt(hd);
    });
    const max = Math.max(...scores);
    const p = scores.map((s) => Math.exp(s - max));
    const sum = p.reduce((a, b) => a + b, 0);
    for (let t = 0; t < values.length; t++) {
      for (let i = 0; i < hd; i++) out[h * hd + i] += (p[t] / sum) * values[t][kvOff + i];
    }
  }
  return out;
}

/** Per-layer K/V of the positions seen so far. */
interface KvCache {
  keys: Float64Array[][];
  values: Float64Array[][];
}

function newCache(c: ModelConfig): KvCache {
  return {
    keys: Array.from({ length: c.nLayers }, () => []),
    values: Array.from({ length: c.nLayers }, () => []),
  };
}

/** One decoder block for the token at position `pos`; appends its K/V to the cache. */
function block(m: RefModel, l: number, x: Float64Array, pos: number, cache: KvCache): Float64Array {
  const c = m.config, w = m.layers[l];
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
  const n1 = rmsnorm(x, w.attnNorm, c.normEps);
  const q = matvec(w.q, n1, qDim, w.bias?.q);
  const k = matvec(w.k, n1, kvDim, w.bias?.k);
  const v = matvec(w.v, n1, kvDim, w.bias?.v);
  rope(q, c, pos);
  rope(k, c, pos);
  cache.keys[l].push(k);
  cache.values[l].push(v);
  const attn = matvec(w.o, attend(q, cache.keys[l], cache.values[l], c), c.dim);
  const h = x.map((xi, i) => xi + attn[i]);
  const n2 = rmsnorm(h, w.mlpNorm, c.normEps);
  const gate = matvec(w.gate, n2, c.hiddenDim);
  const up = matvec(w.up, n2, c.hiddenDim);
  const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]); // silu(gate) * up
  const down = matvec(w.down, act, c.dim);
  return h.map((hi, i) => hi + down[i]);
}

/** Logits [vocab] for `token` at position `pos`, given the cache of positions 0..pos-1. */
function step(m: RefModel, token: number, pos: number, cache: KvCache): Float64Array {
  const c = m.config;
  let x: Float64Array = m.embed.slice(token * c.dim, (token + 1) * c.dim);
  for (let l = 0; l < c.nLayers; l++) x = block(m, l, x, pos, cache);
  return matvec(m.lmHead, rmsnorm(x, m.finalNorm, c.normEps), c.vocabSize);
}

/** Logits of every position, row-major [tokens.length, vocab]. */
export function refLogits(m: RefModel, tokens: number[]): Float64Array {
  const V = m.config.vocabSize;
  const out = new Float64Array(tokens.length * V);
  const cache = newCache(m.config);
  tokens.forEach((t, pos) => out.set(step(m, t, pos, cache), pos * V));
  return out;
}

/** Index of the largest value (the first one on ties). */
function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Greedy decoding: the `nNew` token ids that follow `promptIds`. */
export function refGreedy(m: RefModel, promptIds: number[], nNew: number): number[] {
  const cache = newCache(m.config);
  let logits: Float64Array = new Float64Array(0);
  for (let pos = 0; pos < promptIds.length; pos++) logits = step(m, promptIds[pos], pos, cache);
  const out: number[] = [];
  for (let i = 0; i < nNew; i++) {
    out.push(argmax(logits));
    if (i + 1 < nNew) logits = step(m, out[i], promptIds.length + i, cache);
  }
  return out;
}
