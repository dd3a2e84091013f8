/**
 * Every forward-pass kernel against its float64 reference on seeded random, uneven shapes
 * (sizes that do not divide tiles or workgroups), covering every kernel version on this adapter.
 */
import assert from "node:assert/strict";
import { Gpu } from "../src/gpu/device.ts";
import { readMatrix, releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import {
  argmaxToken,
  attention,
  elementwise,
  embedding,
  loss,
  rmsnorm,
  rope,
  sampleToken,
} from "../src/ops/basic.ts";
import { argmax } from "../src/generate/sampler.ts";
import { chooseLinear, linear, type LinearOverride } from "../src/ops/linear.ts";
import { CPU_LOOP_LIMIT } from "../kernels/common.ts";
import { LOSS_MAX_V } from "../kernels/loss.ts";
import { ropeTables } from "../kernels/rope.ts";
import { ArgumentError, UnsupportedError } from "../src/errors.ts";
import {
  assertClose,
  randomArray,
  randomNormal,
  refAttention,
  refKl,
  refLinear,
  refNll,
  refRmsnorm,
  refRope,
  refSample,
  rng,
} from "./ref/kernels_ref.ts";

const gpu = await Gpu.create();

async function runLinear(
  M: number,
  N: number,
  K: number,
  seed: number,
  o: { override?: LinearOverride; bias?: boolean; f16?: boolean; chunkRows?: number } = {},
) {
  const X = randomArray(M * K, seed), W = randomArray(N * K, seed + 1), b = randomArray(N, seed + 2);
  const dtype = o.f16 ? "f16" : "f32";
  const w = uploadMatrix(gpu, W, N, K, "w", dtype, o.chunkRows);
  const x = gpu.upload(X, "x"), y = gpu.buffer(M * N * 4, "y");
  const bias = o.bias ? gpu.upload(b, "b") : undefined;
  linear(gpu, x, w, y, M, bias, o.override);
  const got = await gpu.readF32(y, 0, M * N);
  const Wq = o.f16 ? await readMatrix(gpu, w) : W; // reference sees the f16-rounded weights
  const want = refLinear(X, Wq, M, N, K, o.bias ? b : undefined);
  const opts = chooseLinear(gpu, M, K, w, !!bias, o.override);
  assertClose(got, want, 1e-5 * Math.sqrt(K), 1e-4, `linear ${M}x${N}x${K} ${JSON.stringify(opts)}`);
  releaseMatrix(gpu, w);
  gpu.release(x, y, bias);
}

Deno.test("linear: default choice on uneven shapes, vec4 and scalar K", async () => {
  // On CPU adapters: 1x8 (vec4, scalar); vec4 K with M > 1 takes the texture version (8x32,
  // 32x32); scalar K the storage tile (8x64, 16x64). The storage 32x64 tile (the CPU default before
  // the texture version; ~10 s to compile on lavapipe) is forced once in the next test.
  for (const [M, N, K] of [[1, 37, 20], [1, 50, 17], [7, 45, 36], [6, 33, 13], [130, 67, 64], [9, 5, 3]]) {
    await runLinear(M, N, K, M * 1000 + N);
  }
});

Deno.test("linear: every version forced (tile 4x4 GPU-style, CPU storage tiles, texture, rowlane, wgreduce)", async () => {
  const forced: LinearOverride[] = [
    { variant: "tile", tm: 4, tn: 4 },
    { variant: "tile", tm: 16, tn: 8 },
    { variant: "tile", tm: 16, tn: 64 },
    { variant: "rowlane" },
    { variant: "wgreduce" },
  ];
  for (const override of forced) {
    for (const [M, N, K] of [[1, 29, 44], [3, 19, 21], [33, 41, 68]]) {
      await runLinear(M, N, K, 7 + M, { override });
    }
  }
  // The texture version takes vec4 K only (M, N, K/4 still uneven against its 32x32 tile).
  const textures: LinearOverride[] = [
    { variant: "texture" },
    { variant: "texture", tm: 5, tn: 3 },
    { variant: "texture", texPieceRows: 7 },
  ];
  for (const override of textures) {
    for (const [M, N, K] of [[1, 29, 44], [3, 19, 20], [33, 41, 68], [70, 45, 36]]) {
      await runLinear(M, N, K, 7 + M, { override });
    }
  }
  await runLinear(37, 47, 24, 5, {
    bias: true,
    chunkRows: 10,
    override: { variant: "texture", texPieceRows: 4 },
  });
});

Deno.test("linear: bias, and weights split into row chunks", async () => {
  await runLinear(5, 47, 24, 3, { bias: true, chunkRows: 10 });
  await runLinear(1, 47, 24, 4, { bias: true, chunkRows: 9 });
});

Deno.test({
  name: "linear: f16 weights with f32 accumulation",
  ignore: !gpu.f16,
  fn: async () => {
    for (const [M, N, K] of [[1, 37, 40], [6, 23, 36], [1, 15, 9]]) {
      await runLinear(M, N, K, 11, { f16: true });
    }
    await runLinear(1, 33, 40, 12, { f16: true, override: { variant: "wgreduce" } });
  },
});

Deno.test("rmsnorm", async () => {
  const T = 13, dim = 37;
  const X = randomArray(T * dim, 5, 3), w = randomArray(dim, 6);
  const x = gpu.upload(X, "x"), wb = gpu.upload(w, "w"), y = gpu.buffer(T * dim * 4, "y");
  rmsnorm(gpu, x, wb, y, T, dim, 1e-5);
  assertClose(await gpu.readF32(y, 0, T * dim), refRmsnorm(X, w, T, dim, 1e-5), 1e-6, 1e-5, "rmsnorm");
  gpu.release(x, wb, y);
});

Deno.test("rope: interleaved (llama2.c) and half (Hugging Face) layouts", async () => {
  const T = 9, nHeads = 3, hd = 12, pos0 = 250, theta = 10000;
  const tab = ropeTables(pos0 + T, hd, theta);
  const cos = gpu.upload(tab.cos, "cos"), sin = gpu.upload(tab.sin, "sin");
  for (const layout of ["interleaved", "half"] as const) {
    const X = randomArray(T * nHeads * hd, 8);
    const x = gpu.upload(X, "x");
    rope(gpu, layout, x, cos, sin, T, nHeads, hd, pos0);
    const want = refRope(X, T, nHeads, hd, pos0, theta, layout);
    assertClose(await gpu.readF32(x, 0, X.length), want, 1e-6, 1e-5, `rope ${layout}`);
    gpu.release(x);
  }
  gpu.release(cos, sin);
});

Deno.test("attention: causal, grouped-query heads, prefill tiles and single-token decode", async () => {
  for (const [T, nHeads, nKv, hd, pos0] of [[7, 6, 2, 8, 3], [1, 4, 4, 12, 10], [13, 4, 1, 16, 0]]) {
    const S = pos0 + T;
    const Q = randomArray(T * nHeads * hd, 1 + T),
      K = randomArray(S * nKv * hd, 2 + T),
      V = randomArray(S * nKv * hd, 3 + T);
    const q = gpu.upload(Q, "q"),
      k = gpu.upload(K, "k"),
      v = gpu.upload(V, "v"),
      o = gpu.buffer(Q.length * 4, "o");
    attention(gpu, q, k, v, o, T, nHeads, nKv, hd, pos0);
    const want = refAttention(Q, K, V, T, nHeads, nKv, hd, pos0);
    assertClose(
      await gpu.readF32(o, 0, Q.length),
      want,
      1e-5,
      1e-4,
      `attention T${T} H${nHeads}/${nKv} hd${hd}`,
    );
    gpu.release(q, k, v, o);
  }
});

Deno.test("embedding: lookup across row chunks, f32 and f16 tables", async () => {
  const vocab = 53, dim = 12, T = 17;
  const E = randomArray(vocab * dim, 9);
  const r = rng(10);
  const ids = Array.from({ length: T }, () => Math.floor(r() * vocab));
  for (const dtype of gpu.f16 ? ["f32", "f16"] as const : ["f32"] as const) {
    const table = uploadMatrix(gpu, E, vocab, dim, "E", dtype, 20);
    const Eq = await readMatrix(gpu, table);
    const idb = gpu.upload(Uint32Array.from(ids), "ids"), out = gpu.buffer(T * dim * 4, "out");
    embedding(gpu, idb, table, out, T);
    const want = new Float64Array(T * dim);
    ids.forEach((id, t) => want.set(Eq.subarray(id * dim, (id + 1) * dim), t * dim));
    assertClose(await gpu.readF32(out, 0, T * dim), want, 0, 0, `embedding ${dtype}`);
    releaseMatrix(gpu, table);
    gpu.release(idb, out);
  }
});

Deno.test("elementwise: residual add and SwiGLU", async () => {
  const n = 1031;
  const A = randomArray(n, 11, 4), B = randomArray(n, 12, 4);
  const a = gpu.upload(A, "a"), b = gpu.upload(B, "b");
  elementwise(gpu, "add", a, b, n);
  assertClose(await gpu.readF32(a, 0, n), Array.from(A, (v, i) => v + B[i]), 1e-6, 1e-6, "add");
  gpu.write(a, A);
  elementwise(gpu, "swiglu", a, b, n);
  assertClose(
    await gpu.readF32(a, 0, n),
    Array.from(A, (v, i) => v / (1 + Math.exp(-v)) * B[i]),
    1e-6,
    1e-5,
    "swiglu",
  );
  gpu.release(a, b);
});

/** NLL and KL rows of [R, V] logits against float64; `spread` logits: normal * 5 (else uniform +-8). */
async function checkLosses(
  R: number,
  V: number,
  seed: number,
  spread: boolean,
  chunkRows?: number,
): Promise<void> {
  const gen = spread
    ? (n: number, s: number) => randomNormal(n, s, 5)
    : (n: number, s: number) => randomArray(n, s, 8);
  const P = gen(R * V, seed), Q = gen(R * V, seed + 1);
  // A nearby model too (small KL): Q2 = P + normal * 0.1.
  const Q2 = randomNormal(R * V, seed + 2, 0.1).map((d, i) => P[i] + d);
  const r = rng(seed + 3);
  const targets = Uint32Array.from({ length: R }, (_, i) => i === 0 ? V - 1 : Math.floor(r() * V));
  const p = gpu.upload(P, "p"),
    q = gpu.upload(Q, "q"),
    q2 = gpu.upload(Q2, "q2"),
    t = gpu.upload(targets, "t");
  const out = gpu.buffer(R * 4, "out");
  const what = `R${R} V${V}`;
  loss(gpu, "nll", p, t, out, R, V, chunkRows);
  assertClose(await gpu.readF32(out, 0, R), refNll(P, targets, R, V), 1e-5, 1e-5, `nll ${what}`);
  loss(gpu, "kl", p, q, out, R, V, chunkRows);
  assertClose(await gpu.readF32(out, 0, R), refKl(P, Q, R, V), 1e-5, 1e-4, `kl ${what}`);
  loss(gpu, "kl", p, q2, out, R, V, chunkRows);
  assertClose(await gpu.readF32(out, 0, R), refKl(P, Q2, R, V), 1e-5, 1e-3, `kl (nearby) ${what}`);
  loss(gpu, "kl", p, p, out, R, V, chunkRows);
  assertClose(await gpu.readF32(out, 0, R), new Float64Array(R), 1e-6, 0, `kl(p||p) ${what}`);
  gpu.release(p, q, q2, t, out);
}

Deno.test("losses: next-token NLL and KL divergence on uneven shapes", async () => {
  await checkLosses(11, 1000, 13, false);
  await checkLosses(3, 37, 16, true); // fewer columns than lanes
  await checkLosses(9, 1031, 19, true);
  await checkLosses(150, 1031, 28, true, 64); // three dispatches: 64 + 64 + 22 rows
});

/**
 * The device's greedy choice against the host's `argmax` (the contract), row by row of R rows of V
 * logits (rows at offsets that are not multiples of the binding alignment), with ties, -Inf, NaN
 * (at index 0 too), a row of NaN and a row of equal values mixed into random ones.
 */
async function checkArgmax(R: number, V: number, seed: number): Promise<void> {
  const r = rng(seed);
  const L = randomArray(R * V, seed, 4);
  const row = (i: number) => L.subarray(i * V, (i + 1) * V);
  const pick = () => Math.floor(r() * V);
  for (let i = 0; i < R; i++) {
    const x = row(i);
    switch (i % 6) {
      case 1: { // a tie for the max, far apart
        const a = pick(), b = pick();
        x[a] = x[b] = 9;
        break;
      }
      case 2: // NaN and -Inf scattered, a NaN above the max's position
        for (let k = 0; k < Math.max(1, V >> 3); k++) x[pick()] = r() < 0.5 ? NaN : -Infinity;
        break;
      case 3: // NaN at index 0: the host keeps 0
        x[0] = NaN;
        x[pick()] = 100;
        break;
      case 4: // all equal, or all NaN
        x.fill(i % 12 === 4 ? -Infinity : NaN);
        break;
      case 5: // the max at the very end
        x[V - 1] = 50;
        break;
    }
  }
  const logits = gpu.upload(L, "logits"), ids = gpu.buffer(4, "ids"), out = gpu.buffer(R * 4, "out");
  gpu.write(out, new Uint32Array(R).fill(0xdeadbeef));
  for (let i = 0; i < R; i++) argmaxToken(gpu, logits, i, V, ids, out, i);
  const got = [...await gpu.readU32(out)], want = Array.from({ length: R }, (_, i) => argmax(row(i)));
  assert.deepEqual(got, want, `argmax R${R} V${V}`);
  assert.deepEqual([...await gpu.readU32(ids)], [want[R - 1]], "ids[0] holds the last choice");
  gpu.release(logits, ids, out);
}

Deno.test("argmaxToken: the host's argmax exactly (ties, NaN, -Inf), uneven V, unaligned rows", async () => {
  await checkArgmax(13, 1, 1);
  await checkArgmax(13, 7, 2);
  await checkArgmax(12, 255, 3);
  await checkArgmax(12, 257, 4);
  await checkArgmax(7, 1000, 5);
  await checkArgmax(7, 32001, 6);
});

/**
 * Sampling on the device against its float64 reference, over rows of V logits (random spreads,
 * NaN and -Inf entries, runs of equal logits: ties at the nucleus cut), temperatures, top-p
 * masses and random numbers; cases float32 rounding could flip (refSample's `ambiguous`) are
 * counted and must stay few.
 */
async function checkSample(R: number, V: number, seed: number, spreads: number[]): Promise<number> {
  const r = rng(seed);
  const L = new Float32Array(R * V);
  for (let i = 0; i < R; i++) {
    const spread = spreads[i % spreads.length];
    for (let k = 0; k < V; k++) L[i * V + k] = (r() * 2 - 1) * spread;
    if (i % 4 === 1) { for (let k = 0; k < V; k += 7) L[i * V + k] = r() < 0.5 ? NaN : -Infinity; }
    if (i % 4 === 2) { for (let k = 0; k < V; k += 3) L[i * V + k] = 1.5; // ties, near the top
     }
  }
  const cases: { row: number; T: number; topP: number }[] = [];
  for (let i = 0; i < R; i++) {
    for (const T of [0.6, 1, 1.7]) for (const topP of [1, 0.9, 0.5, 0.05]) cases.push({ row: i, T, topP });
  }
  const rs = Float32Array.from(cases, () => Math.min(r(), 0.99999994));
  const logits = gpu.upload(L, "logits"), randoms = gpu.upload(rs, "randoms");
  const ids = gpu.buffer(4, "ids"), out = gpu.buffer(cases.length * 4, "out");
  cases.forEach((c, k) => sampleToken(gpu, logits, c.row, V, randoms, k, c.T, c.topP, ids, out, k));
  const got = await gpu.readU32(out);
  let ambiguous = 0;
  cases.forEach((c, k) => {
    const want = refSample(L.subarray(c.row * V, (c.row + 1) * V), c.T, c.topP, rs[k]);
    if (want.ambiguous) ambiguous++;
    else assert.equal(got[k], want.id, `sample V${V} row ${c.row} T ${c.T} topP ${c.topP} r ${rs[k]}`);
  });
  gpu.release(logits, randoms, ids, out);
  return ambiguous / cases.length;
}

Deno.test("sampleToken: the float64 reference's ids (temperatures, top-p, NaN, -Inf, ties), uneven V", async () => {
  // A near-flat row of 32001 logits gives each id ~3e-5 of the mass, float32 sums' rounding: so
  // the large vocabulary gets LLM-like spreads (stories15M's logits span ~20) and a looser bound.
  const runs: [number, number, number, number[], number][] = [
    [8, 1, 1, [0.5, 2, 6], 0],
    [8, 5, 2, [0.5, 2, 6], 0.1],
    [8, 300, 3, [0.5, 2, 6], 0.1],
    [8, 1000, 4, [0.5, 2, 6], 0.1],
    [4, 32001, 5, [10, 20], 0.3],
  ];
  for (const [R, V, seed, spreads, most] of runs) {
    const share = await checkSample(R, V, seed, spreads);
    console.log(`V = ${V}: ${(100 * share).toFixed(1)}% of the cases too close to call`);
    assert(share <= most, `${(100 * share).toFixed(1)}% of V = ${V}'s cases too close to call`);
  }
  const b = gpu.buffer(4, "tiny");
  assert.throws(() => sampleToken(gpu, b, 0, 1, b, 0, 0, 1, b, b, 0), ArgumentError); // temperature 0
  assert.throws(() => sampleToken(gpu, b, 0, 1, b, 0, 1, 0, b, b, 0), ArgumentError); // top-p 0
  gpu.release(b);
});

// One invocation per row would loop over the vocabulary; lavapipe silently ends an invocation's
// loops after 65535 iterations in all (ARCHITECTURE.md), so these shapes catch any kernel that does.
Deno.test("losses: long rows (stories15M's V = 32000, and V > 65535)", async () => {
  await checkLosses(5, 32000, 22, true);
  await checkLosses(2, 70001, 25, true);
});

Deno.test({
  name: "launchers refuse shapes past lavapipe's loop limit",
  ignore: !gpu.isCpu,
  fn: () => {
    const b = gpu.buffer(16, "tiny");
    assert.throws(() => loss(gpu, "nll", b, b, b, 1, LOSS_MAX_V + 1), UnsupportedError);
    assert.throws(() => attention(gpu, b, b, b, b, 1, 1, 1, 4, CPU_LOOP_LIMIT - 1), UnsupportedError);
    assert.throws(() => rmsnorm(gpu, b, b, b, 1, 40000, 1e-5), UnsupportedError);
    gpu.release(b);
  },
});

Deno.test("launchers refuse arguments that disagree with the buffers, at the call", async () => {
  const bufs: GPUBuffer[] = [];
  const f32 = (n: number) => {
    bufs.push(gpu.upload(new Float32Array(n).fill(1), "t"));
    return bufs[bufs.length - 1];
  };
  const w = uploadMatrix(gpu, new Float32Array(8), 2, 4, "w"); // N 2, K 4
  const x = f32(4), y = f32(2);
  const bad = (f: () => void, re: RegExp) =>
    assert.throws(f, (e: Error) => e instanceof ArgumentError && re.test(e.message));
  // linear: M, buffer sizes, override, aliasing; before, WebGPU errors at the next readback or clamped reads.
  for (const M of [0, 1.5, -1, NaN]) bad(() => linear(gpu, x, w, y, M), /linear: M must be an integer >= 1/);
  bad(() => linear(gpu, x, w, y, 2), /linear: x holds 16 bytes but X \[M 2, K 4\] f32 needs 32/);
  bad(() => linear(gpu, x, w, f32(1), 1), /linear: y holds 4 bytes/);
  bad(() => linear(gpu, x, w, y, 1, f32(1)), /linear: bias holds 4 bytes/);
  const w2 = uploadMatrix(gpu, new Float32Array(4), 2, 2, "w2");
  bad(() => linear(gpu, x, w, y, 1, undefined, { variant: "tile", tm: 0 }), /override\.tm must be/);
  bad(
    () => linear(gpu, x, w, y, 1, undefined, { variant: "nope" as "tile" }),
    /override\.variant must be one of/,
  );
  bad(
    () => linear(gpu, y, w2, y, 1),
    /y and x must be different/,
  );
  const short = {
    rows: 2,
    cols: 4,
    dtype: "f32" as const,
    chunks: [{ buffer: f32(2), rowStart: 0, rows: 2 }],
  };
  bad(() => linear(gpu, x, short, y, 1), /w's chunk at row 0 holds 8 bytes but 2x4 f32 needs 32/);
  releaseMatrix(gpu, w2);
  // The other launchers.
  bad(() => rmsnorm(gpu, x, f32(4), f32(8), 2, 4, 1e-5), /rmsnorm: x holds 16 bytes but x \[T 2, dim 4\]/);
  bad(() => rmsnorm(gpu, x, f32(4), f32(4), 1, 4, NaN), /rmsnorm: eps must be finite/);
  bad(() => elementwise(gpu, "add", x, f32(4), 100), /elementwise: a holds 16 bytes but 100 f32 needs 400/);
  bad(() => elementwise(gpu, "mul" as "add", x, f32(4), 4), /elementwise: op must be one of "add", "swiglu"/);
  const E = uploadMatrix(gpu, new Float32Array(12), 3, 4, "E");
  bad(
    () => embedding(gpu, f32(1), E, f32(12), 3),
    /embedding: ids holds 4 bytes/,
  );
  const { cos, sin } = ropeTables(2, 4, 10000), c = gpu.upload(cos, "cos"), s = gpu.upload(sin, "sin");
  bad(() => rope(gpu, "half", x, c, s, 1, 1, 4, 5), /rope: cos holds 16 bytes but positions 0\.\.5/);
  bad(() => rope(gpu, "half", x, c, s, 1, 1, 3, 0), /rope: headDim must be even/);
  bad(() => rope(gpu, "x" as "half", x, c, s, 1, 1, 4, 0), /rope: layout must be one of/);
  bad(() => attention(gpu, f32(12), f32(8), f32(8), f32(12), 1, 3, 2, 4, 0), /multiple of nKvHeads/);
  bad(
    () => attention(gpu, x, f32(4), f32(4), f32(4), 1, 1, 1, 4, 3),
    /attention: k holds 16 bytes but the cache/,
  );
  const ids = gpu.upload(new Uint32Array([0, 0]), "ids");
  bad(() => loss(gpu, "nll", x, ids, f32(2), 2, 4), /loss: p holds 16 bytes but logits \[R 2, V 4\]/);
  bad(() => loss(gpu, "nll", x, ids, f32(1), 1, 0), /loss: V must be an integer >= 1/);
  bad(() => loss(gpu, "ce" as "nll", x, ids, f32(1), 1, 4), /loss: kind must be one of/);
  bad(() => argmaxToken(gpu, x, 1, 4, ids, f32(1), 0), /argmaxToken: logits holds 16 bytes but row 1/);
  bad(
    () => sampleToken(gpu, x, 0, 4, f32(1), 1, 1, 0.9, ids, f32(1), 0),
    /sampleToken: randoms holds 4 bytes/,
  );
  // A released matrix, and an f16 one on a device without shader-f16.
  releaseMatrix(gpu, E);
  bad(() => embedding(gpu, ids, E, f32(12), 1), /no data on the GPU/);
  const noF16 = await Gpu.create({ forceF32: true });
  try {
    const h = {
      rows: 2,
      cols: 4,
      dtype: "f16" as const,
      chunks: [{ buffer: noF16.buffer(16, "h"), rowStart: 0, rows: 2 }],
    };
    assert.throws(
      () => linear(noF16, noF16.buffer(16, "x"), h, noF16.buffer(8, "y"), 1),
      (e: Error) => e instanceof UnsupportedError && /no shader-f16/.test(e.message),
    );
  } finally {
    noF16.destroy();
  }
  assert.equal((await gpu.readF32(y))[0], 1); // nothing was recorded, the device is fine
  releaseMatrix(gpu, w);
  gpu.release(...bufs, c, s, ids);
});

Deno.test("runtime: pipelines are cached by options, never by shape; no buffer leaks", async () => {
  const before = gpu.pipelineCount;
  assert(before > 0);
  await gpu.sync();
  if (gpu.liveBuffers !== 0) throw new Error(`${gpu.liveBuffers} GPU buffers leaked`);
  gpu.destroy(); // last test: no device outlives the file (ARCHITECTURE.md, "Buffer lifetimes")
});
