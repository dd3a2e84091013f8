/**
 * Texture GEMV (kernels/linear_gemv_tex.ts, src/ops/gemv_tex.ts) against a float64 reference on
 * uneven shapes: rows that fill no weight block, K % 4 != 0 and not a multiple of the unroll,
 * weights split into several texture pieces, bias, several activation rows, every register tile
 * and unroll, f16 weights where the device has them, the widest X a uniform slot holds, and a
 * stale slot (a wider X with Inf past the next call's K) that must not leak into the next call.
 */
import assert from "node:assert/strict";
import { Gpu } from "../src/gpu/device.ts";
import {
  gemvTex,
  gemvTexSupported,
  releaseGemvTex,
  releaseGemvTexScratch,
  uploadGemvTex,
  type UploadGemvTexOptions,
} from "../src/ops/gemv_tex.ts";
import { UnsupportedError } from "../src/errors.ts";
import { assertClose, randomArray, refLinear } from "./ref/kernels_ref.ts";

const gpu = await Gpu.create();

function f16Round(a: Float32Array): Float32Array {
  return Float32Array.from(new Float16Array(a));
}

async function check(
  N: number,
  K: number,
  seed: number,
  o: UploadGemvTexOptions & { M?: number; bias?: boolean; pieces?: number; X?: Float32Array } = {},
): Promise<void> {
  const M = o.M ?? 1;
  const W = randomArray(N * K, seed), X = o.X ?? randomArray(M * K, seed + 1), b = randomArray(N, seed + 2);
  const w = uploadGemvTex(gpu, W, N, K, o);
  if (o.pieces !== undefined) assert.equal(w.pieces.length, o.pieces, `${N}x${K} pieces`);
  assert.equal(w.pieces.reduce((s, p) => s + p.rows, 0), N);
  const x = gpu.upload(X, "x"), y = gpu.buffer(M * N * 4, "y");
  gpu.write(y, new Float32Array(M * N).fill(NaN)); // every output must be written
  const bias = o.bias ? gpu.upload(b, "b") : undefined;
  gemvTex(gpu, x, w, y, M, bias);
  const got = await gpu.readF32(y, 0, M * N);
  const want = refLinear(X, o.dtype === "f16" ? f16Round(W) : W, M, N, K, o.bias ? b : undefined);
  const what = `gemvTex ${M}x${N}x${K} ${JSON.stringify({ ...o, X: undefined })}`;
  assertClose(got, want, 1e-5 * Math.sqrt(K), 1e-4, what);
  releaseGemvTex(gpu, w);
  gpu.release(x, y, bias);
}

Deno.test("gemvTex: uneven shapes, every register tile and unroll", async () => {
  let seed = 1;
  for (const rt of [1, 2, 4, 8, 16, 32]) {
    for (const uk of [1, 2, 4]) {
      await check(203, 37, seed++, { rt, uk }); // K % 4 = 1, rows fill no block
      await check(5, 130, seed++, { rt, uk, bias: true }); // fewer rows than one lane's tile
    }
  }
  await check(1, 1, seed++);
  await check(517, 1024, seed++, { bias: true });
});

Deno.test("gemvTex: several texture pieces, several activation rows, bias", async () => {
  await check(203, 37, 50, { rt: 4, uk: 2, maxPieceRows: 64, pieces: 4, bias: true });
  await check(300, 258, 51, { rt: 8, uk: 4, maxPieceRows: 100, pieces: 5, M: 3, bias: true });
  await check(129, 1001, 52, { rt: 2, uk: 1, maxPieceRows: 16, pieces: 9, M: 2 });
});

Deno.test("gemvTex: the widest X a slot holds; wider is refused", async () => {
  assert(gemvTexSupported(16384) && !gemvTexSupported(16385));
  await check(70, 16384, 60, { bias: true });
  await check(9, 16383, 61, { uk: 1 });
  assert.throws(() => uploadGemvTex(gpu, new Float32Array(2 * 16385), 2, 16385), UnsupportedError);
});

Deno.test("gemvTex: a stale slot does not leak past K", async () => {
  // Fill the slot with Inf (columns 37.. of a 64-wide X), then run K = 37 (uk 4: 48 columns read;
  // packed f16: 64).
  const poisonSlot = async () => {
    const w = uploadGemvTex(gpu, new Float32Array(8 * 64), 8, 64);
    const x = gpu.upload(new Float32Array(64).fill(Infinity), "x"), y = gpu.buffer(8 * 4, "y");
    gemvTex(gpu, x, w, y, 1);
    await gpu.sync();
    releaseGemvTex(gpu, w);
    gpu.release(x, y);
  };
  await poisonSlot();
  await check(203, 37, 70, { rt: 8, uk: 4 });
  if (gpu.f16) {
    await poisonSlot();
    await check(203, 37, 71, { rt: 8, uk: 4, dtype: "f16" });
  }
});

Deno.test({
  name: "gemvTex: X read in place from a Gpu.gemvInput buffer when the kernel reads no column past K",
  ignore: !gpu.cpu?.uniformX, // gemvInput makes uniform-capable buffers only there (lavapipe)
  fn: async () => {
    const copies = () => {
      let n = 0;
      const copy = gpu.copy.bind(gpu);
      gpu.copy = (...a) => (n++, copy(...a));
      return () => (delete (gpu as { copy?: unknown }).copy, n);
    };
    // K = 64 (f32: 16 texels, uk 4), 37 (48 columns read), 64 f16 packed (8 texels), 40 f16 (64 read).
    const dtypes = gpu.f16 ? ["f32", "f16"] as const : ["f32"] as const;
    for (const dtype of dtypes) {
      for (const K of [64, 37, 40]) {
        const N = 21, W = randomArray(N * K, K), X = randomArray(K, K + 1);
        const w = uploadGemvTex(gpu, W, N, K, { dtype });
        const x = gpu.gemvInput(K * 4, "x"), y = gpu.buffer(N * 4, "y");
        gpu.write(x, new Float32Array(x.size / 4).fill(NaN)); // what the kernel would meet past K
        gpu.write(x, X);
        const done = copies();
        gemvTex(gpu, x, w, y);
        const n = done();
        const used = w.kvp * (w.packed ? 32 : 16);
        const what = `gemvTex ${N}x${K} ${dtype}`;
        assert.equal(n, used === K * 4 ? 0 : 1, `${what}: X copied ${n} times, kernel reads ${used} bytes`);
        const want = refLinear(X, dtype === "f16" ? f16Round(W) : W, 1, N, K);
        assertClose(await gpu.readF32(y), want, 1e-5 * Math.sqrt(K), 1e-4, what);
        releaseGemvTex(gpu, w);
        gpu.release(x, y);
      }
    }
  },
});

Deno.test({
  name: "gemvTex: f16 weights (packed in rgba32uint, and rgba16float)",
  ignore: !gpu.f16,
  fn: async () => {
    for (const packed of [true, false]) {
      await check(203, 37, 80, { dtype: "f16", packed, bias: true }); // K % 8 = 5
      await check(300, 258, 81, { dtype: "f16", packed, rt: 4, uk: 2, maxPieceRows: 100, pieces: 4, M: 2 });
      await check(5, 61, 82, { dtype: "f16", packed, rt: 32, uk: 1 });
      await check(9, 16384, 83, { dtype: "f16", packed, bias: true });
    }
  },
});

Deno.test("gemvTex: buffers that disagree with the shapes and bad options are refused at the call", () => {
  const w = uploadGemvTex(gpu, new Float32Array(12), 3, 4);
  const x = gpu.buffer(4 * 4, "x"), y = gpu.buffer(3 * 4, "y"), small = gpu.buffer(4, "small");
  try {
    // Before: a WebGPU copy error at the next readback (x), or a clamped write / bias read (y, bias).
    assert.throws(
      () => gemvTex(gpu, small, w, y),
      /gemvTex: x holds 4 bytes but X \[M 1, K 4\] f32 needs 16/,
    );
    assert.throws(() => gemvTex(gpu, x, w, y, 2), /gemvTex: x holds 16 bytes/);
    assert.throws(() => gemvTex(gpu, x, w, small), /gemvTex: y holds 4 bytes/);
    assert.throws(() => gemvTex(gpu, x, w, y, 1, small), /gemvTex: bias holds 4 bytes/);
    assert.throws(() => uploadGemvTex(gpu, new Float32Array(0), 0, 4), /rows must be an integer >= 1/);
    assert.throws(() => uploadGemvTex(gpu, new Float32Array(12), 3, 4, { rt: 3 }), /rt must be a power of 2/);
    assert.throws(() => uploadGemvTex(gpu, new Float32Array(12), 3, 4, { maxPieceRows: 0 }), /maxPieceRows/);
  } finally {
    releaseGemvTex(gpu, w);
    gpu.release(x, y, small);
  }
});

Deno.test("gemvTex: release", async () => {
  releaseGemvTexScratch(gpu);
  await gpu.sync();
  assert.equal(gpu.liveBuffers, 0);
  gpu.destroy(); // last test: no device outlives the file (ARCHITECTURE.md, "Buffer lifetimes")
});
