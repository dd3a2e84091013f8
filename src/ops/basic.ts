/**
 * Thin launchers for the small kernels of the forward pass and the losses. Each records into
 * the current batch; shapes travel in uniforms, so one pipeline serves every model.
 * @module
 */
import { ARGMAX_WG, argmaxWgsl } from "../../kernels/argmax.ts";
import { SAMPLE_WG, sampleWgsl } from "../../kernels/sample.ts";
import {
  attentionKey,
  type AttentionOptions,
  attentionWgsl,
  attentionWorkgroups,
} from "../../kernels/attention.ts";
import { CPU_LOOP_LIMIT, packUniforms } from "../../kernels/common.ts";
import { ELEMENTWISE_WG, type ElementwiseOp, elementwiseWgsl } from "../../kernels/elementwise.ts";
import { EMBEDDING_WG, embeddingWgsl } from "../../kernels/embedding.ts";
import { F16_PACK_WG, f16PackWgsl } from "../../kernels/f16_pack.ts";
import { LOSS_MAX_V, type LossKind, lossWgsl, lossWorkgroups } from "../../kernels/loss.ts";
import { RMSNORM_WG, rmsnormWgsl } from "../../kernels/rmsnorm.ts";
import { ROPE_WG, type RopeLayout, ropeWgsl } from "../../kernels/rope.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import type { Binding, Gpu } from "../gpu/device.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { DeviceScratch } from "../gpu/scratch.ts";
import { checkBuffer, checkCounts, checkDistinct, checkMatrix, checkOneOf } from "./check.ts";

/**
 * a[i] = a[i] + b[i] (op "add") or silu(a[i]) * b[i] (op "swiglu"), n elements.
 *
 * @example The residual add, then the SwiGLU gate, in place on `a`
 * ```ts
 * import { elementwise, Gpu } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const a = gpu.upload(new Float32Array([1, -2, 3, 4]), "a");
 * const b = gpu.upload(new Float32Array([1, 2, 3, 4]), "b");
 * elementwise(gpu, "add", a, b, 3); // only the first n = 3 elements
 * assert.deepEqual([...await gpu.readF32(a)], [2, 0, 6, 4]);
 *
 * elementwise(gpu, "swiglu", a, b, 4); // a[i] = silu(a[i]) * b[i]
 * const silu = (v: number) => v / (1 + Math.exp(-v));
 * const got = await gpu.readF32(a);
 * [2, 0, 6, 4].forEach((v, i) => assert.ok(Math.abs(got[i] - silu(v) * (i + 1)) < 1e-4));
 * gpu.release(a, b);
 * gpu.destroy();
 * ```
 */
export function elementwise(gpu: Gpu, op: ElementwiseOp, a: GPUBuffer, b: GPUBuffer, n: number): void {
  checkOneOf("elementwise", "op", op, ["add", "swiglu"]);
  checkCounts("elementwise", { n });
  checkBuffer("elementwise", "a", a, n * 4, `${n} f32`);
  checkBuffer("elementwise", "b", b, n * 4, `${n} f32`);
  checkDistinct("elementwise", { a }, { b });
  const pipe = gpu.pipeline(`elementwise/${op}`, () => elementwiseWgsl(op));
  gpu.dispatch(pipe, [a, b], packUniforms([n]), Math.ceil(n / ELEMENTWISE_WG));
}

/**
 * dst = `n` f32 values of `src` stored as f16 (2 bytes each, rounded to nearest even on every
 * adapter, bit for bit as the host's `f32ToF16`; past f16's range they become ±Inf). `n` must be even. Core WGSL: no shader-f16 needed.
 *
 * @example Half the bytes, and back: values f16 holds exactly come back unchanged
 * ```ts
 * import { Gpu, packF16, unpackF16 } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const x = gpu.upload(new Float32Array([1, -2.5, 0.099975586, 65504]), "x");
 * const half = gpu.buffer(4 * 2, "half"), back = gpu.buffer(4 * 4, "back");
 * packF16(gpu, x, half, 4);
 * unpackF16(gpu, half, back, 4);
 * assert.deepEqual([...await gpu.readF32(back)], [1, -2.5, 0.099975586, 65504].map(Math.fround));
 * gpu.release(x, half, back);
 * gpu.destroy();
 * ```
 */
export function packF16(gpu: Gpu, src: GPUBuffer, dst: GPUBuffer, n: number): void {
  convertF16(gpu, "pack", src, dst, n);
}

/** dst = `n` f16 values of `src` (from {@linkcode packF16}) as f32. `n` must be even. */
export function unpackF16(gpu: Gpu, src: GPUBuffer, dst: GPUBuffer, n: number): void {
  convertF16(gpu, "unpack", src, dst, n);
}

function convertF16(gpu: Gpu, direction: "pack" | "unpack", src: GPUBuffer, dst: GPUBuffer, n: number): void {
  const fn = `${direction}F16`;
  checkCounts(fn, { n });
  if (n % 2 !== 0) throw new ArgumentError(`${fn}: n must be even (values go in pairs), got ${n}`);
  const [f32, f16] = direction === "pack" ? [src, dst] : [dst, src];
  checkBuffer(fn, direction === "pack" ? "src" : "dst", f32, n * 4, `${n} f32`);
  checkBuffer(fn, direction === "pack" ? "dst" : "src", f16, n * 2, `${n} f16`);
  checkDistinct(fn, { dst }, { src });
  const pipe = gpu.pipeline(`f16/${direction}`, () => f16PackWgsl(direction));
  gpu.dispatch(pipe, [src, dst], packUniforms([n / 2]), Math.ceil(n / 2 / F16_PACK_WG));
}

/**
 * out[T, dim] = table[ids] (table possibly chunked by rows).
 *
 * @example Look up 3 tokens in a 5 x 3 table held in row chunks of 2
 * ```ts
 * import { embedding, Gpu, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const vocab = 5, dim = 3, T = 3;
 * const table = Float32Array.from({ length: vocab * dim }, (_, i) => i); // row v = [3v, 3v + 1, 3v + 2]
 * const E = uploadMatrix(gpu, table, vocab, dim, "embed", "f32", 2);
 * assert.equal(E.chunks.length, 3);
 * const ids = gpu.upload(new Uint32Array([4, 0, 2]), "ids");
 * const out = gpu.buffer(T * dim * 4, "out");
 * embedding(gpu, ids, E, out, T);
 * assert.deepEqual([...await gpu.readF32(out)], [12, 13, 14, 0, 1, 2, 6, 7, 8]);
 * releaseMatrix(gpu, E);
 * gpu.release(ids, out);
 * gpu.destroy();
 * ```
 */
export function embedding(gpu: Gpu, ids: GPUBuffer, table: GpuMatrix, out: GPUBuffer, T: number): void {
  checkCounts("embedding", { T });
  checkMatrix(gpu, "embedding", "table", table);
  checkBuffer("embedding", "ids", ids, T * 4, `${T} u32 ids`);
  checkBuffer("embedding", "out", out, T * table.cols * 4, `out [T ${T}, dim ${table.cols}] f32`);
  const pipe = gpu.pipeline(`embedding/${table.dtype}`, () => embeddingWgsl(table.dtype));
  for (const c of table.chunks) {
    const u = packUniforms([T, table.cols, c.rowStart, c.rows]);
    gpu.dispatch(pipe, [ids, c.buffer, out], u, Math.ceil((T * table.cols) / EMBEDDING_WG));
  }
}

/**
 * Record y[t, :] = RMSNorm(x[t, :]) * w for T rows of `dim` (f32) into the current batch; throws {@linkcode
 * UnsupportedError} when `dim` exceeds a CPU adapter's loop limit.
 *
 * @example Normalise two rows of 3 and compare with a CPU loop
 * ```ts
 * import { Gpu, rmsnorm } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const T = 2, dim = 3, eps = 1e-5;
 * const X = [1, 2, 3, -4, 0, 4], W = [1, 0.5, 2];
 * const x = gpu.upload(new Float32Array(X), "x"), w = gpu.upload(new Float32Array(W), "w");
 * const y = gpu.buffer(T * dim * 4, "y");
 * rmsnorm(gpu, x, w, y, T, dim, eps);
 * const got = await gpu.readF32(y);
 * for (let t = 0; t < T; t++) {
 *   const row = X.slice(t * dim, (t + 1) * dim);
 *   const inv = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / dim + eps);
 *   row.forEach((v, j) => assert.ok(Math.abs(got[t * dim + j] - v * inv * W[j]) < 1e-5));
 * }
 * gpu.release(x, w, y);
 * gpu.destroy();
 * ```
 */
export function rmsnorm(
  gpu: Gpu,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  T: number,
  dim: number,
  eps: number,
): void {
  checkCounts("rmsnorm", { T, dim });
  if (!(Number.isFinite(eps) && eps >= 0)) {
    throw new ArgumentError(`rmsnorm: eps must be finite and >= 0, got ${eps}`);
  }
  // One invocation walks its row twice: 2 * (dim + 1) loop steps under llvmpipe's loop limit.
  if (gpu.isCpu && 2 * (dim + 1) > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`rmsnorm: dim ${dim} exceeds this CPU adapter's loop limit`);
  }
  checkBuffer("rmsnorm", "x", x, T * dim * 4, `x [T ${T}, dim ${dim}] f32`);
  checkBuffer("rmsnorm", "w", w, dim * 4, `w [dim ${dim}] f32`);
  checkBuffer("rmsnorm", "y", y, T * dim * 4, `y [T ${T}, dim ${dim}] f32`);
  checkDistinct("rmsnorm", { y }, { x, w });
  const pipe = gpu.pipeline("rmsnorm", rmsnormWgsl);
  gpu.dispatch(pipe, [x, w, y], packUniforms([T, dim, { f32: eps }]), Math.ceil(T / RMSNORM_WG));
}

/**
 * In-place RoPE on x [T, nHeads * headDim] for positions pos0 .. pos0 + T - 1.
 *
 * @example Rotate 2 tokens at positions 3 and 4 (llama2.c's interleaved pairs)
 * ```ts
 * import { Gpu, rope, ropeTables } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const T = 2, nHeads = 2, headDim = 4, pos0 = 3, half = headDim / 2;
 * const { cos, sin } = ropeTables(pos0 + T, headDim, 10000); // [position, headDim / 2]
 * const X = Float32Array.from({ length: T * nHeads * headDim }, (_, i) => i + 1);
 * const x = gpu.upload(X, "q"), c = gpu.upload(cos, "cos"), s = gpu.upload(sin, "sin");
 * rope(gpu, "interleaved", x, c, s, T, nHeads, headDim, pos0);
 * const got = await gpu.readF32(x);
 * for (let a = 0; a < X.length; a += 2) { // the pair (x[2i], x[2i + 1]) of head h of token t
 *   const t = Math.floor(a / (nHeads * headDim)), i = (a % headDim) / 2, p = (pos0 + t) * half + i;
 *   assert.ok(Math.abs(got[a] - (X[a] * cos[p] - X[a + 1] * sin[p])) < 1e-5);
 *   assert.ok(Math.abs(got[a + 1] - (X[a] * sin[p] + X[a + 1] * cos[p])) < 1e-5);
 * }
 * gpu.release(x, c, s);
 * gpu.destroy();
 * ```
 */
export function rope(
  gpu: Gpu,
  layout: RopeLayout,
  x: GPUBuffer,
  cos: GPUBuffer,
  sin: GPUBuffer,
  T: number,
  nHeads: number,
  headDim: number,
  pos0: number,
): void {
  checkOneOf("rope", "layout", layout, ["interleaved", "half"]);
  checkCounts("rope", { T, nHeads, headDim });
  checkCounts("rope", { pos0 }, 0);
  if (headDim % 2 !== 0) throw new ArgumentError(`rope: headDim must be even, got ${headDim}`);
  checkBuffer(
    "rope",
    "x",
    x,
    T * nHeads * headDim * 4,
    `x [T ${T}, nHeads ${nHeads} * headDim ${headDim}] f32`,
  );
  const table = (pos0 + T) * (headDim / 2) * 4,
    rows = `positions 0..${pos0 + T - 1} of headDim / 2 (ropeTables)`;
  checkBuffer("rope", "cos", cos, table, rows);
  checkBuffer("rope", "sin", sin, table, rows);
  checkDistinct("rope", { x }, { cos, sin });
  const pipe = gpu.pipeline(`rope/${layout}`, () => ropeWgsl(layout));
  const n = T * nHeads * (headDim / 2);
  gpu.dispatch(pipe, [x, cos, sin], packUniforms([T, nHeads, headDim, pos0]), Math.ceil(n / ROPE_WG));
}

/**
 * Causal GQA attention of T queries (positions pos0..) over the K/V cache.
 *
 * @example Two query heads sharing one K/V head; zero keys make the softmax uniform
 * ```ts
 * import { attention, Gpu } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const T = 3, nHeads = 2, nKvHeads = 1, headDim = 4;
 * const q = gpu.upload(Float32Array.from({ length: T * nHeads * headDim }, (_, i) => Math.sin(i)), "q");
 * const k = gpu.buffer(T * nKvHeads * headDim * 4, "k"); // all zero: every score is 0
 * // V row p = p + 1: query t sees positions 0..t only, so its output is (1 + ... + (t + 1)) / (t + 1).
 * const V = Float32Array.from({ length: T * headDim }, (_, i) => Math.floor(i / headDim) + 1);
 * const v = gpu.upload(V, "v");
 * const out = gpu.buffer(T * nHeads * headDim * 4, "out");
 * attention(gpu, q, k, v, out, T, nHeads, nKvHeads, headDim, 0);
 * const got = await gpu.readF32(out);
 * got.forEach((o, i) => assert.ok(Math.abs(o - (Math.floor(i / (nHeads * headDim)) + 2) / 2) < 1e-5));
 * gpu.release(q, k, v, out);
 * gpu.destroy();
 * ```
 */
export function attention(
  gpu: Gpu,
  q: GPUBuffer,
  k: GPUBuffer,
  v: GPUBuffer,
  out: GPUBuffer,
  T: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  pos0: number,
): void {
  checkCounts("attention", { T, nHeads, nKvHeads, headDim });
  checkCounts("attention", { pos0 }, 0);
  if (headDim % 4 !== 0) throw new UnsupportedError(`attention needs headDim % 4 == 0, got ${headDim}`);
  if (nHeads % nKvHeads !== 0) {
    throw new ArgumentError(`attention: nHeads (${nHeads}) must be a multiple of nKvHeads (${nKvHeads})`);
  }
  // One invocation walks every cached position: pos0 + T + 1 loop steps under llvmpipe's loop limit.
  if (gpu.isCpu && pos0 + T + 1 > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`attention: context ${pos0 + T} exceeds this CPU adapter's loop limit`);
  }
  const qBytes = T * nHeads * headDim * 4, kvBytes = (pos0 + T) * nKvHeads * headDim * 4;
  checkBuffer("attention", "q", q, qBytes, `q [T ${T}, nHeads ${nHeads} * headDim ${headDim}] f32`);
  const cache = `the cache [positions 0..${pos0 + T - 1}, nKvHeads ${nKvHeads} * headDim ${headDim}] f32`;
  checkBuffer("attention", "k", k, kvBytes, cache);
  checkBuffer("attention", "v", v, kvBytes, cache);
  checkBuffer("attention", "out", out, qBytes, `out [T ${T}, nHeads ${nHeads} * headDim ${headDim}] f32`);
  checkDistinct("attention", { out }, { q, k, v });
  // Query tiles share K/V loads: long tiles pay off on CPU adapters (hd 48, T 256 on lavapipe:
  // tq 4 28 ms, tq 8 16 ms, tq 16 12 ms); GPUs keep registers small.
  const tq = T === 1 ? 1 : gpu.isCpu ? (headDim <= 64 ? 16 : 8) : 4;
  const o: AttentionOptions = { headDim, tq, workgroupSize: gpu.isCpu ? 8 : 64 };
  const pipe = gpu.pipeline(attentionKey(o), () => attentionWgsl(o));
  const u = packUniforms([T, nHeads, nKvHeads, pos0, { f32: 1 / Math.sqrt(headDim) }]);
  gpu.dispatch(pipe, [q, k, v, out], u, attentionWorkgroups(o, T, nHeads));
}

/**
 * Per-row NLL (second = targets u32[R]) or KL(P || Q) (second = Q logits) into out f32[R].
 * Rows go in dispatches of whole multiples of 64 rows (256-byte binding offsets) when R x V
 * logits exceed the adapter's binding limit (lavapipe: 128 MiB, 1048 rows of V = 32000).
 * @param maxRowsPerChunk override for tests (forces several dispatches on small inputs).
 *
 * @example Next-token NLL of 2 rows of 3 logits, and KL of logits against themselves
 * ```ts
 * import { Gpu, loss } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const R = 2, V = 3;
 * const p = gpu.upload(new Float32Array([1, 2, 3, 0, 0, Math.log(2)]), "logits"); // [R, V]
 * const targets = gpu.upload(new Uint32Array([2, 0]), "targets");
 * const out = gpu.buffer(R * 4, "out");
 * loss(gpu, "nll", p, targets, out, R, V); // out[r] = logsumexp(P[r]) - P[r, target[r]]
 * const nll = await gpu.readF32(out);
 * assert.ok(Math.abs(nll[0] - (Math.log(Math.E + Math.E ** 2 + Math.E ** 3) - 3)) < 1e-5);
 * assert.ok(Math.abs(nll[1] - Math.log(4)) < 1e-5); // logsumexp(0, 0, ln 2) = ln 4
 * loss(gpu, "kl", p, p, out, R, V); // KL(softmax(P) || softmax(P)) = 0
 * (await gpu.readF32(out)).forEach((kl) => assert.ok(Math.abs(kl) < 1e-6));
 * gpu.release(p, targets, out);
 * gpu.destroy();
 * ```
 */
export function loss(
  gpu: Gpu,
  kind: LossKind,
  p: GPUBuffer,
  second: GPUBuffer,
  out: GPUBuffer,
  R: number,
  V: number,
  maxRowsPerChunk = Infinity,
): void {
  checkOneOf("loss", "kind", kind, ["nll", "kl"]);
  checkCounts("loss", { R, V });
  if (gpu.isCpu && V > LOSS_MAX_V) {
    // llvmpipe silently ends an invocation's loops after 65535 steps in all (CPU_LOOP_LIMIT).
    throw new UnsupportedError(
      `loss: a vocabulary of ${V} exceeds this CPU adapter's loop limit (${LOSS_MAX_V})`,
    );
  }
  checkBuffer("loss", "p", p, R * V * 4, `logits [R ${R}, V ${V}] f32`);
  const what = kind === "kl" ? `Q logits [R ${R}, V ${V}] f32` : `${R} u32 targets`;
  checkBuffer("loss", kind === "kl" ? "q" : "targets", second, R * (kind === "kl" ? V : 1) * 4, what);
  checkBuffer("loss", "out", out, R * 4, `out [R ${R}] f32`);
  checkDistinct("loss", { out }, { p, second });
  let per = R;
  if (R * V * 4 > gpu.maxBinding || R > maxRowsPerChunk) {
    per = Math.floor(Math.min(gpu.maxBinding / (V * 4), maxRowsPerChunk) / LOSS_ROW_ALIGN) * LOSS_ROW_ALIGN;
    if (per < LOSS_ROW_ALIGN) {
      throw new UnsupportedError(
        `loss: ${LOSS_ROW_ALIGN} rows of ${V} logits exceed this adapter's ${gpu.maxBinding}-byte binding limit`,
      );
    }
  }
  const pipe = gpu.pipeline(`loss/${kind}`, () => lossWgsl(kind));
  for (let r0 = 0; r0 < R; r0 += per) {
    const n = Math.min(per, R - r0);
    const rows = (buffer: GPUBuffer, width: number): Binding => ({
      buffer,
      offset: r0 * width * 4,
      size: n * width * 4,
    });
    const b = [rows(p, V), rows(second, kind === "kl" ? V : 1), rows(out, 1)];
    gpu.dispatch(pipe, b, packUniforms([n, V]), lossWorkgroups(n));
  }
}

/** Rows per loss chunk are a multiple of this: 64 f32/u32 rows span 256 bytes, the offset alignment. */
const LOSS_ROW_ALIGN = 64;

/**
 * Record the greedy choice from row `row` of `logits` [*, V] (f32): its argmax, the lowest index
 * among equals, as the host's `argmax` picks it (kernels/argmax.ts), written to `ids[0]` and to
 * `out[outIndex]` (u32). Throws {@linkcode UnsupportedError} when V exceeds a CPU adapter's loop
 * limit.
 *
 * @example Two greedy choices recorded back to back, read back together
 * ```ts
 * import { argmax, argmaxToken, Gpu } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const V = 7, rows = [[0, 3, -1, 3, 2, 1, 0], [9, 1, 2, 3, 4, 5, 10]];
 * const logits = gpu.upload(new Float32Array(rows.flat()), "logits");
 * const ids = gpu.buffer(4, "ids"), out = gpu.buffer(2 * 4, "out");
 * argmaxToken(gpu, logits, 0, V, ids, out, 0);
 * argmaxToken(gpu, logits, 1, V, ids, out, 1);
 * assert.deepEqual([...await gpu.readU32(out)], rows.map((r) => argmax(r))); // [1, 6]
 * gpu.release(logits, ids, out);
 * gpu.destroy();
 * ```
 */
export function argmaxToken(
  gpu: Gpu,
  logits: GPUBuffer,
  row: number,
  V: number,
  ids: GPUBuffer,
  out: GPUBuffer,
  outIndex: number,
): void {
  checkTokenChoice("argmaxToken", logits, row, V, ids, out, outIndex);
  if (gpu.isCpu && Math.ceil(V / ARGMAX_WG) >= CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`argmaxToken: a vocabulary of ${V} exceeds this CPU adapter's loop limit`);
  }
  const pipe = gpu.pipeline("argmax", () => argmaxWgsl());
  const { binding, base } = logitsRow(gpu, logits, row, V);
  gpu.dispatch(pipe, [binding, ids, out], packUniforms([V, base, outIndex, 0]), 1);
}

/** The checks argmaxToken and sampleToken share: logits row `row` of V, ids[0], out[outIndex]. */
function checkTokenChoice(
  fn: string,
  logits: GPUBuffer,
  row: number,
  V: number,
  ids: GPUBuffer,
  out: GPUBuffer,
  outIndex: number,
): void {
  checkCounts(fn, { V });
  checkCounts(fn, { row, outIndex }, 0);
  checkBuffer(fn, "logits", logits, (row + 1) * V * 4, `row ${row} of logits [*, V ${V}] f32`);
  checkBuffer(fn, "ids", ids, 4, "one u32 id");
  checkBuffer(fn, "out", out, (outIndex + 1) * 4, `u32 out[${outIndex}]`);
  checkDistinct(fn, { ids, out }, { logits });
}

/**
 * Bind only row `row` of `logits` [*, V] (a long prompt's logits can exceed the binding limit),
 * from the aligned offset at or before it; `base` is the row's first element in the binding.
 */
function logitsRow(
  gpu: Gpu,
  logits: GPUBuffer,
  row: number,
  V: number,
): { binding: { buffer: GPUBuffer; offset: number; size: number }; base: number } {
  const align = gpu.device.limits.minStorageBufferOffsetAlignment;
  const offset = Math.floor((row * V * 4) / align) * align, base = (row * V * 4 - offset) / 4;
  return { binding: { buffer: logits, offset, size: (base + V) * 4 }, base };
}

/** sampleToken's vec4 binding when a row is too short for one (kernels/sample.ts reads none of it). */
const sampleStandIn = new DeviceScratch("sample-stand-in", () => GPUBufferUsage.STORAGE);

/**
 * Record a token sampled from row `row` of `logits` [*, V] (f32) at `temperature` > 0 with
 * nucleus mass `topP` in (0, 1], using the uniform random number `randoms[rIndex]` (f32 in
 * [0, 1)); the id goes to `ids[0]` and `out[outIndex]` (u32). The rule is kernels/sample.ts's:
 * the same distribution as the host's `Sampler`, not the same ids for a seed. Throws
 * {@linkcode UnsupportedError} when V exceeds a CPU adapter's loop limit.
 *
 * @example A nearly greedy temperature picks the largest logit whatever the random number
 * ```ts
 * import { Gpu, sampleToken } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const logits = gpu.upload(new Float32Array([0, 3, 1, 2.5, -1]), "logits");
 * const randoms = gpu.upload(new Float32Array([0.01, 0.99]), "randoms");
 * const ids = gpu.buffer(4, "ids"), out = gpu.buffer(2 * 4, "out");
 * sampleToken(gpu, logits, 0, 5, randoms, 0, 0.01, 0.9, ids, out, 0);
 * sampleToken(gpu, logits, 0, 5, randoms, 1, 0.01, 0.9, ids, out, 1);
 * assert.deepEqual([...await gpu.readU32(out)], [1, 1]);
 * gpu.release(logits, randoms, ids, out);
 * gpu.destroy();
 * ```
 */
export function sampleToken(
  gpu: Gpu,
  logits: GPUBuffer,
  row: number,
  V: number,
  randoms: GPUBuffer,
  rIndex: number,
  temperature: number,
  topP: number,
  ids: GPUBuffer,
  out: GPUBuffer,
  outIndex: number,
): void {
  checkTokenChoice("sampleToken", logits, row, V, ids, out, outIndex);
  checkCounts("sampleToken", { rIndex }, 0);
  checkBuffer("sampleToken", "randoms", randoms, (rIndex + 1) * 4, `f32 randoms[${rIndex}]`);
  if (!(temperature > 0 && Number.isFinite(temperature))) {
    throw new ArgumentError(`sampleToken: temperature must be finite and > 0, got ${temperature}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new ArgumentError(`sampleToken: top-p must be in (0, 1], got ${topP}`);
  // 12 walks of a lane's span (4 ids a slot), 124 sums of the lanes' partials (kernels/sample.ts).
  if (gpu.isCpu && 48 * Math.ceil(V / 4 / SAMPLE_WG) + 124 * SAMPLE_WG >= CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`sampleToken: a vocabulary of ${V} exceeds this CPU adapter's loop limit`);
  }
  const pipe = gpu.pipeline("sample", () => sampleWgsl());
  const { binding, base } = logitsRow(gpu, logits, row, V);
  // The row as whole vec4s (a 16-byte stand-in when there is none) and as scalars.
  const nq = Math.floor(binding.size / 16);
  const vec4s: Binding = nq > 0
    ? { ...binding, size: nq * 16 }
    : { buffer: sampleStandIn.get(gpu, 16), offset: 0, size: 16 };
  const u = new Uint32Array([V, base, outIndex, rIndex, 0, 0, nq, 0]);
  new Float32Array(u.buffer).set([1 / temperature, topP], 4);
  gpu.dispatch(pipe, [vec4s, binding, randoms, ids, out], u, 1);
}
