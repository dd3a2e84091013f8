/**
 * CPU adapter profiles (src/gpu/profile.ts): the driver names map to their measured operand paths,
 * the adapter we run on picks its kernels and weight layouts from its profile, and a small pruned
 * model decodes the same greedy tokens on the sparse and the dense kernels, with logits as the
 * float64 reference's. Runs on whatever adapter the suite has (lavapipe on CI); swiftshader_test.ts
 * runs it again on SwiftShader, with OWLGPU_EXPECT_CPU_PROFILE naming the profile it must get, so
 * a run that silently fell back to another driver fails.
 * @module
 */
import assert from "node:assert/strict";
import { generate } from "../src/generate/generate.ts";
import { Gpu, readableAsUniformX } from "../src/gpu/device.ts";
import { releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import { cpuProfile } from "../src/gpu/profile.ts";
import { LINEARS, llamaConfig } from "../src/model/config.ts";
import { ForwardRunner, GpuModel } from "../src/model/forward.ts";
import { chooseLinear } from "../src/ops/linear.ts";
import { chooseSparseLinear } from "../src/ops/sparse.ts";
import { packUnstructured } from "../src/sparse/format.ts";
import { releaseSparse, uploadSparse } from "../src/sparse/upload.ts";
import { sparseWeightsFromZeros } from "../src/sparse/zeros.ts";
import { memoryWeights, randomRefModel, refGreedy, refLogits, refModelTensors } from "./ref/forward_ref.ts";
import { rng } from "./ref/kernels_ref.ts";

/** Set by swiftshader_test.ts: the profile this adapter must have ("lavapipe" | "swiftshader"). */
const EXPECT = Deno.env.get("OWLGPU_EXPECT_CPU_PROFILE");

const gpu = await Gpu.create();

Deno.test("cpuProfile: driver names map to their measured operand paths", () => {
  const lavapipe = {
    name: "lavapipe",
    weightTextures: true,
    uniformX: true,
    sparseLayout: "delta",
    sparseStorageRows: 4,
  };
  const swiftshader = {
    name: "swiftshader",
    weightTextures: false,
    uniformX: false,
    sparseLayout: "groups",
    sparseStorageRows: 8,
  };
  assert.deepEqual(cpuProfile("llvmpipe (LLVM 15.0.6, 256 bits)"), lavapipe);
  assert.deepEqual(cpuProfile("SwiftShader Device (Subzero)"), swiftshader); // Deno on its Vulkan ICD
  assert.deepEqual(cpuProfile("google swiftshader"), swiftshader); // Chromium: vendor and architecture
  assert.deepEqual(cpuProfile("some software rasterizer"), lavapipe); // unknown CPU drivers: lavapipe's
  const a = cpuProfile("llvmpipe");
  a.uniformX = false;
  assert.equal(cpuProfile("llvmpipe").uniformX, true, "each call returns its own copy");
});

Deno.test("the adapter picks kernels and layouts from its CPU profile", () => {
  if (EXPECT) {
    assert.equal(gpu.cpu?.name, EXPECT, `expected the ${EXPECT} profile on adapter "${gpu.adapterName}"`);
  }
  assert.equal(gpu.cpu === undefined, !gpu.isCpu);
  const textures = gpu.cpu?.weightTextures ?? false, uniformX = gpu.cpu?.uniformX ?? false;

  const x = gpu.gemvInput(300 * 4, "x");
  assert.equal(readableAsUniformX(x), uniformX);
  gpu.release(x);

  const w = uploadMatrix(gpu, new Float32Array(24 * 64).fill(0.5), 24, 64, "w");
  assert.equal(chooseLinear(gpu, 1, 64, w, false).variant, gpu.isCpu ? "tile" : "wgreduce");
  assert.equal(chooseLinear(gpu, 8, 64, w, false).variant, textures ? "texture" : "tile");

  const dense = new Float32Array(24 * 300);
  const r = rng(3);
  for (let i = 0; i < dense.length; i++) if (r() < 0.3) dense[i] = r() - 0.5;
  const s = uploadSparse(gpu, packUnstructured(dense, 24, 300), { label: "s" });
  assert.equal(s.texture, textures);
  assert.equal(s.layout, gpu.cpu?.sparseLayout ?? "delta");
  const gemv = chooseSparseLinear(gpu, 1, s, false), gemm = chooseSparseLinear(gpu, 9, s, true);
  assert.equal(gemv.x, uniformX ? "ubo" : "storage");
  assert.equal(gemv.variant, gpu.isCpu ? "lane" : s.layout === "delta" && !s.starts ? "lane" : "wg");
  assert.deepEqual([gemm.variant, gemm.x, gemm.tm], [
    "lane",
    uniformX ? "ubo" : "storage",
    uniformX ? 16 : gpu.cpu?.sparseStorageRows ?? 4,
  ]);
  assert.equal(chooseSparseLinear(gpu, 3, s, false).tm, 4); // M <= 4: one tile of 4 everywhere
  releaseSparse(gpu, s);
  releaseMatrix(gpu, w);
});

/** A small LLaMA: uneven dims, grouped-query heads, untied head. */
const CONFIG = llamaConfig({ dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, vocabSize: 97 }, {
  nKvHeads: 2,
  maxSeqLen: 64,
});

Deno.test("a 70%-pruned small model: sparse kernels decode the dense kernels' greedy tokens, logits as float64", async () => {
  const ref = randomRefModel(CONFIG, 11);
  // 70% zeros a row at random positions; every 7th row of each linear empty, to test empty rows.
  const r = rng(5);
  for (const layer of ref.layers) {
    for (const lin of LINEARS) {
      const m = layer[lin], cols = lin === "down" ? CONFIG.hiddenDim : CONFIG.dim;
      for (let i = 0; i < m.length; i++) if (r() < 0.7 || Math.floor(i / cols) % 7 === 3) m[i] = 0;
    }
  }
  const source = memoryWeights(CONFIG, refModelTensors(ref));
  const sparse = await sparseWeightsFromZeros(source);
  assert.equal(sparse.names.length, CONFIG.nLayers * LINEARS.length);
  const live = gpu.liveBuffers;
  const denseModel = await GpuModel.load(gpu, source, { dtype: "f32" });
  const sparseModel = await GpuModel.load(gpu, source, { dtype: "f32", sparse });
  try {
    assert.equal(sparseModel.sparseLinearCount, CONFIG.nLayers * LINEARS.length);
    assert.ok(sparseModel.linearBytes() < denseModel.linearBytes()); // small rows: index overhead
    const prompt = [1, 17, 42, 5, 88, 23, 60];
    // Prompt logits (the sparse GEMM and the tile GEMM) against the float64 reference.
    const want = refLogits(ref, prompt);
    for (const model of [denseModel, sparseModel]) {
      const runner = new ForwardRunner(model, prompt.length);
      try {
        runner.forward(prompt);
        const got = await gpu.readF32(runner.logits, 0, want.length);
        let err = 0, scale = 0;
        for (let i = 0; i < want.length; i++) {
          err = Math.max(err, Math.abs(got[i] - want[i]));
          scale = Math.max(scale, Math.abs(want[i]));
        }
        assert.ok(err <= 1e-4 * scale, `logits: max error ${err} against max |logit| ${scale}`);
      } finally {
        runner.release();
      }
    }
    // Greedy decode (prefill, then GEMV steps through the KV cache): identical tokens.
    const opts = { maxTokens: 32, temperature: 0 };
    const dense = (await generate(denseModel, prompt, opts)).ids;
    const sparseIds = (await generate(sparseModel, prompt, opts)).ids;
    assert.deepEqual(sparseIds, dense);
    assert.deepEqual(dense, refGreedy(ref, prompt, 32));
  } finally {
    denseModel.release();
    sparseModel.release();
  }
  assert.equal(gpu.liveBuffers, live, "no GPU buffer outlives the models");
});

Deno.test("cpu profile: cleanup", () => {
  assert.equal(gpu.liveBuffers, 0);
  gpu.destroy();
});
