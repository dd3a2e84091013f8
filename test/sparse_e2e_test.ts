/**
 * Sparse inference end to end: stories15M pruned to 70% (OWL + Wanda, 4 calibration windows),
 * saved as a sparse model directory, loaded back, and greedily decoded for 64 tokens twice from
 * the same directory: once with the dense kernels on the unpacked pruned weights, once with the
 * sparse kernels (a 5-token prompt runs the sparse GEMM, then 63 GEMV steps), and a third time
 * with the dense kernels and `gemvTextures` (what `generate` runs on lavapipe; the sparse model
 * has it too, for its LM head). The tokens must be identical and the prompt's logits close; the
 * sparse file's linears must take at most 45% of their dense f32 bytes; no GPU buffer outlives
 * the test. Also: sparse weights are refused for a source whose RoPE layout differs (llama2.c's
 * interleaved q/k rows against the directory's rotate-half rows). The CLI: `prune --save-sparse` writes model.sparse.safetensors beside
 * model.safetensors in the same directory (same tensors: sparse ones unpacked equal the dense
 * export bit for bit) with the sizes in report.json, and `generate --model DIR --sparse` runs it.
 * The GPU code paths (forced with `asGpu`) decode 24 tokens identical to their dense kernels'.
 * Without the sparse file, `--sparse` packs the linears from the export's zeros (the same greedy
 * tokens as the dense kernels).
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { tokenizeCorpus } from "../src/data/corpora.ts";
import { openTokenizer } from "../src/data/open_tokenizer.ts";
import { calibrationWindows } from "../src/data/windows.ts";
import { main as exportMain } from "../src/cli/export_main.ts";
import { generateMain } from "../src/cli/generate_main.ts";
import { parsePplArgs, runPpl } from "../src/cli/ppl_main.ts";
import { parsePruneArgs, type PruneCliOptions, runPrune } from "../src/cli/prune_main.ts";
import { ArgumentError } from "../src/errors.ts";
import { generate } from "../src/generate/generate.ts";
import { Gpu } from "../src/gpu/device.ts";
import { LINEARS } from "../src/model/config.ts";
import { linearWeight } from "../src/model/names.ts";
import { ForwardRunner, GpuModel } from "../src/model/forward.ts";
import { openWeights } from "../src/model/open.ts";
import { prune } from "../src/prune/pipeline.ts";
import { loadSparseModel, saveSparseModel, SPARSE_MODEL_FILE } from "../src/sparse/model.ts";
import { sparseWeightsFromZeros } from "../src/sparse/zeros.ts";

const PROMPT = [1, 9038, 2501, 263, 931]; // BOS + "Once upon a time"

Deno.test("stories15M at 70%: sparse kernels decode the same 64 tokens as dense kernels; file <= 45%", async () => {
  const gpu = await Gpu.create();
  const source = await openWeights("stories15M");
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-sparse-e2e-" });
  const live = gpu.liveBuffers;
  const t0 = performance.now();
  const lap = (what: string) => console.log(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  try {
    const tok = await openTokenizer("stories15M");
    const calibration = calibrationWindows(await tokenizeCorpus("sotu", tok), 4, source.config.maxSeqLen);
    const pruned = await prune(gpu, source, {
      method: "owl-wanda",
      sparsity: 0.7,
      pattern: { kind: "unstructured" },
      owlM: 5,
      owlLambda: 0.08,
      calibration,
    });
    lap("prune");
    const out = join(dir, "stories15M-70");
    const summary = await saveSparseModel(out, source, pruned.weights);
    assert(summary.ratio <= 0.45, `sparse linears take ${(100 * summary.ratio).toFixed(1)}% of dense f32`);
    console.log(
      `sparse file: linears ${summary.sparseBytes} B = ${(100 * summary.ratio).toFixed(1)}% of ` +
        `${summary.denseF32Bytes} B dense f32; file ${summary.fileBytes} B`,
    );

    const sm = await loadSparseModel(out);
    try {
      // The directory's q/k rows are rotate-half; the llama2.c source's are interleaved.
      await assert.rejects(() => GpuModel.load(gpu, source, { sparse: sm }), ArgumentError);
      assert.equal(gpu.liveBuffers, live, "a refused load leaves nothing behind");

      const dense = await GpuModel.load(gpu, sm);
      const denseTex = await GpuModel.load(gpu, sm, { gemvTextures: true });
      const sparse = await GpuModel.loadSparse(gpu, sm, { gemvTextures: true });
      try {
        assert.equal(dense.sparseLinearCount, 0);
        assert.equal(sparse.sparseLinearCount, source.config.nLayers * LINEARS.length);
        assert.equal(sparse.dtype, dense.dtype);
        assert(sparse.linearBytes() < dense.linearBytes());
        lap("save + load");

        // The prompt pass (sparse GEMM, T = 5): logits close to the dense kernels'.
        const logits: Float32Array[] = [];
        for (const m of [dense, sparse]) {
          const r = new ForwardRunner(m, PROMPT.length);
          try {
            r.forward(PROMPT);
            logits.push(await gpu.readF32(r.logits));
          } finally {
            r.release();
          }
        }
        let worst = 0;
        for (let i = 0; i < logits[0].length; i++) {
          worst = Math.max(worst, Math.abs(logits[0][i] - logits[1][i]) / (1 + Math.abs(logits[0][i])));
        }
        assert(worst < 1e-4, `prompt logits differ by ${worst} (relative)`);

        const a = await generate(dense, PROMPT, { maxTokens: 64, temperature: 0 });
        lap("dense decode");
        const b = await generate(sparse, PROMPT, { maxTokens: 64, temperature: 0 });
        lap("sparse decode");
        const t = await generate(denseTex, PROMPT, { maxTokens: 64, temperature: 0 });
        lap("dense decode, texture GEMV");
        assert.equal(a.ids.length, 64);
        assert.deepEqual(b.ids, a.ids);
        assert.deepEqual(t.ids, a.ids);
        console.log(
          `decode on ${gpu.adapterName}: dense ${a.tokensPerSecond.toFixed(1)} tokens/s, ` +
            `dense (texture GEMV) ${t.tokensPerSecond.toFixed(1)} tokens/s, sparse ${
              b.tokensPerSecond.toFixed(1)
            } tokens/s; prompt logits max rel diff ${worst.toExponential(2)}`,
        );
      } finally {
        dense.release();
        denseTex.release();
        sparse.release();
      }
      lap("CPU kernels");
      // The GPU code paths, forced on this adapter: the sparse linears in storage in the delta
      // layout with each group's start column, the wg GEMV decoding and the lane + storage GEMM
      // prompt pass; against the same device's dense (GPU-path) kernels.
      const g2 = await Gpu.create({ asGpu: true });
      try {
        const dense2 = await GpuModel.load(g2, sm), sparse2 = await GpuModel.loadSparse(g2, sm);
        try {
          const a2 = await generate(dense2, PROMPT, { maxTokens: 24, temperature: 0 });
          const b2 = await generate(sparse2, PROMPT, { maxTokens: 24, temperature: 0 });
          assert.equal(a2.ids.length, 24);
          assert.deepEqual(b2.ids, a2.ids);
        } finally {
          dense2.release();
          sparse2.release();
        }
        assert.equal(g2.liveBuffers, 0);
      } finally {
        g2.destroy();
      }
      lap("GPU kernels (forced)");
    } finally {
      sm.close();
    }
    assert.equal(gpu.liveBuffers, live);
  } finally {
    source.close();
    gpu.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prune --save-sparse writes model.sparse.safetensors into the output; generate --sparse runs it", async () => {
  assert.throws(() => parsePruneArgs(["--save-sparse", "--no-save"]), ArgumentError);
  // stories15M has no sparse file and no zeros: nothing to run sparse
  await assert.rejects(() => generateMain(["--sparse", "--max-tokens", "2"]), ArgumentError);
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-sparse-cli-" });
  try {
    const out = join(dir, "pruned");
    const o = parsePruneArgs([
      "--method",
      "wanda",
      "--nsamples",
      "2",
      "--seqlen",
      "64",
      "--eval-windows",
      "1",
      "--save-sparse",
      "--out",
      out,
    ]) as PruneCliOptions;
    const lines: string[] = [];
    const report = await runPrune(o, (s) => lines.push(s));
    const names = [...Deno.readDirSync(out)].map((e) => e.name);
    assert(names.includes("model.safetensors") && names.includes(SPARSE_MODEL_FILE), `${names}`);
    assert(!names.some((n) => n.includes(".tmp")), `${names}`);
    assert.equal(report.sparse_file, SPARSE_MODEL_FILE);
    assert(report.sparse_bytes! > 0 && report.sparse_bytes! <= 0.45 * report.dense_linear_bytes!);
    const json = JSON.parse(await Deno.readTextFile(join(out, "report.json")));
    assert.equal(json.sparse_bytes, report.sparse_bytes);
    assert.equal(json.dense_linear_bytes, 6 * (4 * 288 * 288 + 3 * 288 * 768) * 4);
    assert.match(lines.join("\n"), /sparse linears .* dense f32/);

    const sm = await loadSparseModel(out);
    const hf = await openWeights(out);
    try {
      assert.equal(sm.dtype, hf.dtype);
      for (const name of [linearWeight(0, "q"), linearWeight(5, "down"), "model.norm.weight"]) {
        assert.deepEqual(await sm.readF32(name), await hf.readF32(name), name);
      }
    } finally {
      sm.close();
      hf.close();
    }
    // A sparse-only directory (config.json, model.sparse.safetensors, the tokenizer; no
    // model.safetensors) opens in every CLI: ppl gives the dense directory's perplexity, and export
    // writes its model.safetensors back bit for bit.
    const only = join(dir, "sparse-only");
    await Deno.mkdir(only);
    for (const f of ["config.json", SPARSE_MODEL_FILE, "tokenizer.bin"]) {
      await Deno.copyFile(join(out, f), join(only, f));
    }
    const pplArgs = (model: string) =>
      parsePplArgs(["--model", model, "--eval-windows", "1", "--seqlen", "64"])!;
    assert.equal((await runPpl(pplArgs(only))).ppl, (await runPpl(pplArgs(out))).ppl);
    await exportMain(["--model", only, "--out", join(dir, "exported")]);
    assert.deepEqual(
      await Deno.readFile(join(dir, "exported", "model.safetensors")),
      await Deno.readFile(join(out, "model.safetensors")),
    );
    await generateMain(["--model", only, "--max-tokens", "2", "--temperature", "0"]); // dense kernels
    const t0 = performance.now();
    await generateMain(["--model", out, "--sparse", "--max-tokens", "8", "--temperature", "0"]);
    console.log(`generate --sparse (8 tokens): ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Without the sparse file, --sparse packs the linears from the dense export's zeros: the same
    // greedy tokens as the dense kernels on the same weights.
    const src = await openWeights(out);
    const gpu = await Gpu.create();
    try {
      const z = await sparseWeightsFromZeros(src);
      assert.equal(z.names.length, 6 * LINEARS.length);
      assert([...z.sparsity.values()].every((f) => f >= 0.69 && f <= 0.71), "wanda at 70%, each linear");
      const dense = await GpuModel.load(gpu, src), sparse = await GpuModel.load(gpu, src, { sparse: z });
      try {
        assert.equal(sparse.sparseLinearCount, 6 * LINEARS.length);
        const a = await generate(dense, PROMPT, { maxTokens: 16, temperature: 0 });
        const b = await generate(sparse, PROMPT, { maxTokens: 16, temperature: 0 });
        assert.deepEqual(b.ids, a.ids);
      } finally {
        dense.release();
        sparse.release();
      }
    } finally {
      src.close();
      gpu.destroy();
    }
    await Deno.remove(join(out, SPARSE_MODEL_FILE));
    await generateMain(["--model", out, "--sparse", "--max-tokens", "4", "--temperature", "0"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("2:4-pruned stories15M saved as N:M (nmGroup) runs with the N:M kernels: logits as dense", async () => {
  const gpu = await Gpu.create();
  const source = await openWeights("stories15M");
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-sparse-nm-" });
  const live = gpu.liveBuffers;
  try {
    const c = source.config;
    const weights = new Map<string, Float32Array>();
    for (let l = 0; l < c.nLayers; l++) {
      for (const lin of LINEARS) {
        const name = linearWeight(l, lin);
        const w = (await source.readF32(name)).slice();
        // Keep the 2 largest of every 4 (block 0: only 1, so blocks differ as OWL's mixed N:M do).
        const keep = l === 0 ? 1 : 2;
        for (let g = 0; g < w.length; g += 4) {
          const order = [0, 1, 2, 3].sort((a, b) => Math.abs(w[g + a]) - Math.abs(w[g + b]));
          for (let q = 0; q < 4 - keep; q++) w[g + order[q]] = 0;
        }
        weights.set(name, w);
      }
    }
    const out = join(dir, "nm");
    await saveSparseModel(out, source, weights, { nmGroup: 4 });
    const sm = await loadSparseModel(out);
    try {
      assert.equal(sm.file.layout(linearWeight(0, "q")).keep, 1);
      assert.equal(sm.file.layout(linearWeight(3, "up")).keep, 2);
      const logits: Float32Array[] = [];
      for (const sparse of [false, true]) {
        const m = sparse ? await GpuModel.loadSparse(gpu, sm) : await GpuModel.load(gpu, sm);
        const r = new ForwardRunner(m, PROMPT.length);
        try {
          assert.equal(m.sparseLinearCount, sparse ? c.nLayers * LINEARS.length : 0);
          r.forward(PROMPT);
          logits.push(await gpu.readF32(r.logits));
        } finally {
          r.release();
          m.release();
        }
      }
      let worst = 0;
      for (let i = 0; i < logits[0].length; i++) {
        worst = Math.max(worst, Math.abs(logits[0][i] - logits[1][i]) / (1 + Math.abs(logits[0][i])));
      }
      assert(worst < 1e-4, `N:M prompt logits differ by ${worst} (relative)`);
    } finally {
      sm.close();
    }
    assert.equal(gpu.liveBuffers, live);
  } finally {
    source.close();
    gpu.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});
