/**
 * The benchmarks' own code on tiny shapes (the speed figures come from `deno task bench`, never
 * from tests): every sparse row carries the fields issue 5's JSON promises, with the dense and
 * sparse outputs checked against float64 inside the bench (it throws otherwise); the decode suite
 * runs a small synthetic decoder dense and sparse end to end (its prompt logits compared inside),
 * with the texture GEMV decode on CPU adapters as `generate` does.
 * @module
 */
import assert from "node:assert/strict";
import { benchDecode } from "../bench/decode.ts";
import { benchSparse, sparseChartSvg } from "../bench/sparse.ts";
import { Gpu } from "../src/gpu/device.ts";

const gpu = await Gpu.create();
const liveAtStart = gpu.liveBuffers;

Deno.test("bench: sparse rows on an uneven shape carry every field of the JSON format", async () => {
  const rows = await benchSparse(gpu, { shapes: [[72, 200]], sparsities: [0.7], reps: 1, gemmM: 8 });
  const dtypes = gpu.f16 ? ["f32", "f16"] : ["f32"];
  // 70% and 2:4, each dtype, a GEMV (M = 1) and a GEMM (M = 8) row.
  assert.equal(rows.length, 2 * dtypes.length * 2);
  for (const r of rows) {
    assert.equal(r.kind, r.M === 1 ? "gemv" : "gemm");
    assert.equal(r.shape, "72x200");
    assert.ok(dtypes.includes(r.dtype));
    assert.equal(r.sparsity, r.format === "2:4" ? 0.5 : 0.7);
    for (const v of [r.ms_dense, r.ms_sparse, r.speedup, r.ideal_speedup, r.gbps]) {
      assert.ok(Number.isFinite(v) && v > 0, `${r.kind} ${r.format} ${r.dtype}: ${v}`);
    }
    assert.ok(r.bytes_sparse < r.bytes_dense, "a 70% or 2:4 matrix moves fewer bytes than dense");
    if (gpu.isCpu) assert.ok(r.dense_kernel === "storage" || r.dense_kernel === "gemv-tex");
  }
  assert.deepEqual(new Set(rows.map((r) => r.format)), new Set(["unstructured", "2:4"]));
  assert.match(sparseChartSvg(rows, "test"), /^<svg[^]*<\/svg>\s*$/);
  assert.equal(gpu.liveBuffers, liveAtStart);
});

Deno.test("bench: the decode suite runs a small decoder dense and sparse, texture GEMV decode on lavapipe", async () => {
  const shape = { dim: 256, hiddenDim: 688, nHeads: 4, vocabSize: 300 };
  const r = await benchDecode(gpu, { shape, blocks: 2, promptTokens: 4, tokens: 3, rounds: 1 });
  assert.equal(r.model, "dim 256, hidden 688, 2 blocks");
  assert.ok(r.logits_rel_diff < 1e-2);
  assert.ok(r.tokens_per_s_dense > 0 && r.tokens_per_s_sparse > 0 && r.speedup > 0);
  assert.ok(r.linear_bytes_sparse < r.linear_bytes_dense, `${r.linear_bytes_sparse} ${r.linear_bytes_dense}`);
  if (gpu.cpu?.weightTextures) {
    // The dense model's linears and LM head as textures; the sparse model's LM head only.
    assert.ok(r.gemv_texture_bytes_dense >= r.linear_bytes_dense + 300 * 256 * 2);
    assert.ok(r.gemv_texture_bytes_sparse > 0 && r.gemv_texture_bytes_sparse < r.gemv_texture_bytes_dense);
  } else assert.equal(r.gemv_texture_bytes_dense, 0);
  assert.equal(gpu.liveBuffers, liveAtStart);
});

Deno.test("bench: cleanup", () => {
  gpu.destroy();
});
