/**
 * Prune the embedded stories15M with OWL-Wanda at 50% unstructured sparsity through the library
 * API (no CLI), then compare the perplexity of the dense and the pruned model.
 *
 *   deno run -A examples/prune_library.ts
 *
 * Steps: open the weights and the tokenizer, cut 8 calibration windows of 256 tokens out of the
 * calibration corpus (State of the Union addresses, `"sotu"`), run `prune` (OWL's outlier pass,
 * the allocation, then the sequential Wanda walk), load the pruned weights into a `GpuModel`, and
 * evaluate both models on the first 4 windows of the evaluation corpus (Moby-Dick). Takes one to
 * two minutes on a CPU adapter (lavapipe), seconds on a GPU.
 * @module
 */
import {
  calibrationWindows,
  evaluatePerplexity,
  evalWindows,
  ForwardRunner,
  Gpu,
  GpuModel,
  type LinearName,
  LINEARS,
  linearWeight,
  openTokenizer,
  openWeights,
  prune,
  type PrunedWeights,
  tokenizeCorpus,
} from "../mod.ts";

const MODEL = "stories15M";
const SEQLEN = 256; // stories15M's context
const NSAMPLES = 8;
const EVAL_WINDOWS = 4;

const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1) + " s";

const gpu = await Gpu.create();
console.log(`adapter: ${gpu.adapterName}`);
const source = await openWeights(MODEL); // a WeightSource: one tensor at a time, f32 on request
const c = source.config;
console.log(`${MODEL}: ${c.nLayers} blocks, dim ${c.dim}, hidden ${c.hiddenDim}, vocab ${c.vocabSize}`);

const tokenizer = await openTokenizer(MODEL);
const calibration = calibrationWindows(await tokenizeCorpus("sotu", tokenizer), NSAMPLES, SEQLEN);
const evalSet = evalWindows(await tokenizeCorpus("moby-dick", tokenizer), SEQLEN, EVAL_WINDOWS);

// The pruning walk. owlM (M) and owlLambda (lambda) are OWL's outlier threshold (scores above
// M x the block mean) and the largest deviation of a block's sparsity from the target.
const result = await prune(gpu, source, {
  method: "owl-wanda",
  sparsity: 0.5,
  pattern: { kind: "unstructured" },
  owlM: 5,
  owlLambda: 0.08,
  calibration,
  onProgress: (phase, done, total) => console.log(`  ${phase} ${done}/${total} (${secs()})`),
});

console.log("\nblock  outlier ratio D_l  target sparsity  realised");
for (const b of result.blocks) {
  // Realised sparsity of the block: weights its 7 masks pruned over the block's weights.
  const mine = result.counts.filter((c) => LINEARS.some((lin) => c.name === linearWeight(b.index, lin)));
  const pruned = mine.reduce((a, c) => a + c.pruned, 0), numel = mine.reduce((a, c) => a + c.numel, 0);
  console.log(
    `${String(b.index).padStart(5)}  ${(b.outlier_ratio ?? NaN).toFixed(3).padStart(15)}%` +
      `  ${b.sparsity.toFixed(4).padStart(15)}  ${(pruned / numel).toFixed(4).padStart(8)}`,
  );
}
console.log(`overall realised sparsity: ${result.realisedSparsity.toFixed(4)}`);

/** Perplexity of `source`, with the pruned linears substituted when `pruned` is given. */
async function perplexity(pruned?: PrunedWeights): Promise<number> {
  const model = await GpuModel.load(gpu, source, { lazyBlocks: true, dtype: "f32" });
  const runner = new ForwardRunner(model, SEQLEN);
  try {
    for (let l = 0; l < c.nLayers; l++) {
      const weights: Partial<Record<LinearName, Float32Array>> = {}; // empty: the source's
      for (const lin of pruned ? LINEARS : []) weights[lin] = await pruned!.read(linearWeight(l, lin));
      await model.loadBlock(l, weights);
    }
    return (await evaluatePerplexity(runner, evalSet)).ppl;
  } finally {
    runner.release();
    model.release();
  }
}

const dense = await perplexity();
const pruned = await perplexity(result.weights);
console.log(`\nperplexity on ${evalSet.length} x ${SEQLEN}-token windows of moby-dick:`);
console.log(`  dense  ${dense.toFixed(3)}`);
console.log(`  pruned ${pruned.toFixed(3)}  (owl-wanda, 50%)`);
console.log(`done in ${secs()}; live GPU buffers: ${gpu.liveBuffers}`);
source.close();
gpu.destroy();
