/**
 * The prune job's evaluation (src/prune/job.ts): with `kl: false` (`--no-kl`) the dense and pruned
 * models are evaluated one after the other, never both on the GPU, and give the perplexities of the
 * side-by-side evaluation (which also reports the KL).
 * @module
 */
import assert from "node:assert/strict";
import { Gpu } from "../src/gpu/device.ts";
import { MemoryByteSource } from "../src/model/bytes.ts";
import { GpuModel } from "../src/model/forward.ts";
import { openLlama2c } from "../src/model/llama2c.ts";
import { pruneAndEvaluate, type PruneJobSettings } from "../src/prune/job.ts";
import { reportMarkdown } from "../src/prune/report.ts";
import { parsePruneArgs, type PruneCliOptions } from "../src/cli/prune_main.ts";

/** A random llama2.c checkpoint: dim 16, hidden 24, 3 layers, 2 heads, vocab 40, context 16. */
async function tinySource() {
  const [D, H, L, V, S] = [16, 24, 3, 40, 16];
  const n = V * D + L * (2 * D + 4 * D * D + 3 * H * D) + D + S * (D / 2);
  const bytes = new Uint8Array(28 + 4 * n);
  new Int32Array(bytes.buffer, 0, 7).set([D, H, L, 2, 2, V, S]);
  new Float32Array(bytes.buffer, 28).set(
    Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(1.3 * i + 1)),
  );
  return await openLlama2c(new MemoryByteSource(bytes, "tiny"));
}

const SETTINGS: PruneJobSettings = {
  method: "owl-wanda",
  allocation: "owl",
  sparsity: 0.6,
  pattern: { kind: "unstructured" },
  owlM: 1,
  owlLambda: 0.08,
  beta: 0,
  alpha: 0,
  nmRounding: "reference",
  percdamp: 0.01,
  blocksize: 128,
  calib: "mine",
  nsamples: 4,
  seqlen: 16,
  eval: "mine",
  evalWindows: 6,
};

Deno.test("prune job: --no-kl evaluates one model at a time, with the side-by-side perplexities", async () => {
  const gpu = await Gpu.create();
  const source = await tinySource();
  const ids = Int32Array.from({ length: 200 }, (_, i) => (i * 7 + (i >> 3)) % 40);
  const before = gpu.liveBuffers;
  try {
    const both = await pruneAndEvaluate(gpu, source, "tiny", ids, ids, SETTINGS);
    assert.ok(both.dense && both.pruned !== both.dense);
    const side = both.report;
    both.release();
    assert.equal(gpu.liveBuffers, before);

    // Count the models on the GPU while the one-at-a-time evaluation runs.
    let resident = 0, most = 0;
    const load = GpuModel.load, release = GpuModel.prototype.release;
    GpuModel.load = async (...args: Parameters<typeof GpuModel.load>) => {
      most = Math.max(most, ++resident);
      return await load.apply(GpuModel, args);
    };
    GpuModel.prototype.release = function (this: GpuModel) {
      resident--;
      return release.call(this);
    };
    const phases: string[] = [];
    let one;
    try {
      one = await pruneAndEvaluate(gpu, source, "tiny", ids, ids, { ...SETTINGS, kl: false }, (p, d, t) => {
        if (p === "evaluate") phases.push(`${d}/${t}`);
      });
    } finally {
      GpuModel.load = load;
      GpuModel.prototype.release = release;
    }
    assert.equal(most, 1, "two models were on the GPU at once");
    assert.equal(one.dense, undefined);
    assert.deepEqual([phases[0], phases.at(-1)], ["0/12", "12/12"]); // both passes, 6 windows each
    const r = one.report;
    assert.equal(r.kl, null);
    assert.ok(Math.abs(r.ppl - side.ppl) <= 1e-6 * side.ppl, `pruned ppl ${r.ppl} vs ${side.ppl}`);
    assert.ok(Math.abs(r.ppl_dense - side.ppl_dense) <= 1e-6 * side.ppl_dense, `dense ${r.ppl_dense}`);
    assert.ok(side.kl! > 0 && r.ppl > r.ppl_dense);
    assert.deepEqual(r.linears, side.linears); // the same masks
    assert.match(reportMarkdown(r), /\| KL\(dense, pruned\) per token \| not computed \(--no-kl\) \|/);
    one.release();
    assert.equal(gpu.liveBuffers, before);
  } finally {
    source.close();
    gpu.destroy();
  }
});

Deno.test("prune job: --no-kl reaches the settings; the default compares the models", () => {
  const parse = (args: string[]) => {
    const o = parsePruneArgs(args);
    assert.notEqual(o, "help");
    return (o as PruneCliOptions).kl;
  };
  assert.equal(parse([]), true);
  assert.equal(parse(["--no-kl"]), false);
});
