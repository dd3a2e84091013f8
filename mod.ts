/**
 * owlgpu prunes LLaMA-family language models with OWL (outlier-weighed layerwise sparsity) and
 * Wanda on WebGPU, and runs and evaluates the pruned models. Every kernel is plain WGSL generated
 * by a TypeScript function, so it runs wherever WebGPU does: Deno 2 (on a GPU, or on Mesa's
 * software Vulkan driver, lavapipe), or a browser.
 *
 * The library has layers, each usable on its own:
 *
 * - **GPU runtime**: {@linkcode Gpu} (adapter and device, tracked buffers, a pipeline cache,
 *   batched dispatches) and {@linkcode GpuMatrix} (weights in row chunks under the binding limit).
 * - **Kernels**: WGSL generators (`linearWgsl`, `attentionWgsl`, `rowMaskWgsl`, ...) and their
 *   launchers (`linear`, `attention`, `wandaRowMask`, `outlierCount`, ...), which pick a kernel
 *   version for the adapter (CPU implementations want large private tiles, GPUs coalesced
 *   workgroups) and record dispatches into the current batch.
 * - **Models**: {@linkcode openWeights} gives a {@linkcode WeightSource} (the embedded
 *   stories15M, a llama2.c checkpoint, or a Hugging Face safetensors directory);
 *   {@linkcode GpuModel} and {@linkcode ForwardRunner} run the forward pass;
 *   {@linkcode exportHuggingFace} writes a Hugging Face directory.
 * - **Data**: tokenizers ({@linkcode Llama2cTokenizer}, {@linkcode HfTokenizer},
 *   {@linkcode openTokenizer}), the built-in corpora ({@linkcode tokenizeCorpus}) and the
 *   protocol's windows ({@linkcode calibrationWindows}, {@linkcode evalWindows}).
 * - **Evaluation and pruning**: {@linkcode evaluatePerplexity}; {@linkcode prune} (the
 *   sequential walk), the allocation rules ({@linkcode owlAllocation}, ...) and the report
 *   writers ({@linkcode reportMarkdown}, {@linkcode reportSvg}, {@linkcode reportJson}).
 * - **Errors**: one class per failure a user can act on, all derived from {@linkcode OwlError}.
 *
 * Functions that read or write files (`openWeights` on a path, `openTokenizer`,
 * `loadCorpusText`, `tokenizeCorpus`, `exportHuggingFace`, `writeSafetensors`, `saveSparseModel`,
 * `loadSparseModel`, `openModelWeights`, ...) need Deno.
 * In a browser, fetch the bytes yourself and use the byte-level APIs instead:
 * {@linkcode MemoryByteSource} with {@linkcode openLlama2c} or {@linkcode SafetensorsFile},
 * {@linkcode Llama2cTokenizer.fromBytes}, {@linkcode HfTokenizer.fromBytes},
 * {@linkcode carveEmbedded}. `deno task build` writes `dist/owlgpu.js` (this module without the
 * Deno-only functions) and `dist/kernels.js` (the runtime and kernels only) for browsers.
 *
 * @example Prune the embedded stories15M with OWL-Wanda at 50% and measure its perplexity
 * ```ts
 * import {
 *   calibrationWindows, evaluatePerplexity, evalWindows, ForwardRunner, Gpu, GpuModel, LINEARS,
 *   linearWeight, openTokenizer, openWeights, prune, tokenizeCorpus,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // The protocol (docs/PROTOCOL.md) calibrates on 128 windows of 256 tokens of the State of the
 * // Union corpus and evaluates on the first 128 windows of 256 tokens of Moby Dick; this example
 * // uses 2 windows of 128 tokens of each, to run in seconds.
 * const seqlen = 128;
 * const gpu = await Gpu.create();
 * const source = await openWeights("stories15M");
 * const tokenizer = await openTokenizer("stories15M");
 * const calibration = calibrationWindows(await tokenizeCorpus("sotu", tokenizer), 2, seqlen);
 * const result = await prune(gpu, source, {
 *   method: "owl-wanda", sparsity: 0.5, pattern: { kind: "unstructured" },
 *   owlM: 5, owlLambda: 0.08, calibration,
 * });
 * assert.equal(result.blocks.length, source.config.nLayers);
 * assert(result.blocks.every((b) => b.sparsity >= 0 && b.sparsity < 1)); // OWL: S +- lambda per block
 * const mean = result.blocks.reduce((a, b) => a + b.sparsity, 0) / result.blocks.length;
 * assert(Math.abs(mean - 0.5) < 1e-9); // ... centred on S
 * assert(Math.abs(result.realisedSparsity - 0.5) < 0.01);
 *
 * // Load the pruned weights and evaluate them on 2 windows of the evaluation corpus.
 * const model = await GpuModel.load(gpu, source, { lazyBlocks: true, dtype: "f32" });
 * for (let l = 0; l < source.config.nLayers; l++) {
 *   const reads = LINEARS.map(async (lin) => [lin, await result.weights.read(linearWeight(l, lin))] as const);
 *   await model.loadBlock(l, Object.fromEntries(await Promise.all(reads)));
 * }
 * const runner = new ForwardRunner(model, seqlen);
 * const windows = evalWindows(await tokenizeCorpus("moby-dick", tokenizer), seqlen, 2);
 * const { ppl } = await evaluatePerplexity(runner, windows);
 * assert(Number.isFinite(ppl) && ppl > 1);
 * runner.release();
 * model.release();
 * gpu.destroy();
 * ```
 *
 * @example Run one kernel on your own buffers: y = W x with owlgpu's linear (GEMV) kernel
 * ```ts
 * import { Gpu, linear, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const N = 3, K = 4;
 * const w = uploadMatrix(gpu, new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1]), N, K, "w");
 * const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x");
 * const y = gpu.buffer(N * 4, "y");
 * linear(gpu, x, w, y, 1); // records Y[1, N] = X[1, K] W^T into the current batch
 * assert.deepEqual([...await gpu.readF32(y)], [1, 2, 10]); // the read submits the batch
 * releaseMatrix(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 * @module
 */

// ---- errors -----------------------------------------------------------------------------------
export {
  ArgumentError,
  CorpusError,
  GpuDeviceError,
  GpuOutOfMemoryError,
  GpuUnavailableError,
  ModelFormatError,
  OutputError,
  OwlError,
  UnsupportedError,
} from "./src/errors.ts";

// ---- GPU runtime ------------------------------------------------------------------------------
export {
  type Binding,
  FORCE_F32_ENV,
  Gpu,
  type GpuOptions,
  readableAsUniformX,
  UNIFORM_X_BYTES,
  WEBGPU_BACKEND_ENV,
} from "./src/gpu/device.ts";
export { type CpuProfile, cpuProfile } from "./src/gpu/profile.ts";
export {
  type GpuMatrix,
  type MatrixChunk,
  readMatrix,
  releaseMatrix,
  rowsPerChunk,
  uploadMatrix,
} from "./src/gpu/matrix.ts";
export { InFlight } from "./src/gpu/inflight.ts";

// ---- kernels: WGSL generators (options -> WGSL text) ------------------------------------------
export { enableF16, type GpuDType, LINEAR_WID, packUniforms, WORKGROUP_ID_ARGS } from "./kernels/common.ts";
export {
  attentionKey,
  type AttentionOptions,
  attentionWgsl,
  attentionWorkgroups,
} from "./kernels/attention.ts";
export { ARGMAX_WG, argmaxWgsl } from "./kernels/argmax.ts";
export { SAMPLE_WG, sampleWgsl } from "./kernels/sample.ts";
export { COPY_WG, copyWgsl } from "./kernels/copy.ts";
export { ELEMENTWISE_WG, type ElementwiseOp, elementwiseWgsl } from "./kernels/elementwise.ts";
export { F16_PACK_WG, f16PackWgsl } from "./kernels/f16_pack.ts";
export { EMBEDDING_WG, embeddingWgsl } from "./kernels/embedding.ts";
export { linearKey, type LinearOptions, linearWgsl, linearWorkgroups } from "./kernels/linear.ts";
export { LOSS_WG, type LossKind, lossWgsl } from "./kernels/loss.ts";
export {
  MAGNITUDE_HIST_SEG,
  MAGNITUDE_LANE_WG,
  type MagnitudeHistVariant,
  magnitudeHistWorkgroups,
  magnitudeKey,
  type MagnitudeOptions,
  type MagnitudePass,
  magnitudeSegments,
  magnitudeWgsl,
} from "./kernels/magnitude.ts";
export { MASK_APPLY_WG, maskApplyKey, maskApplyWgsl } from "./kernels/mask_apply.ts";
export { NM_WG, nmKey, type NMOptions, nmWgsl } from "./kernels/nm.ts";
export {
  OUTLIER_LANE_SEG,
  OUTLIER_LANE_WG,
  outlierKey,
  type OutlierOptions,
  outlierPartials,
  type OutlierPass,
  type OutlierVariant,
  outlierWgsl,
  outlierWorkgroups,
} from "./kernels/outliers.ts";
export { RMSNORM_WG, rmsnormWgsl } from "./kernels/rmsnorm.ts";
// RopeLayout (the model's, defined in kernels/rope.ts) is exported below from config.ts.
export { ROPE_WG, ropeInverseFrequencies, type RopeScaling, ropeTables, ropeWgsl } from "./kernels/rope.ts";
export {
  MASK_BITS,
  maskWordsPerRow,
  ROWMASK_LANE_WG,
  rowMaskKey,
  rowMaskLaneIterations,
  type RowMaskOptions,
  type RowMaskVariant,
  rowMaskWgsl,
  rowMaskWorkgroups,
  scoreBindingCount,
  scoreKey,
  type ScoreSource,
  scoreWgsl,
} from "./kernels/rowmask.ts";
export { STATS_WG, statsKey, type StatsOptions, statsWgsl } from "./kernels/stats.ts";

// ---- kernels: launchers (choose a version, bind, dispatch) ------------------------------------
export {
  argmaxToken,
  attention,
  elementwise,
  embedding,
  loss,
  packF16,
  rmsnorm,
  rope,
  sampleToken,
  unpackF16,
} from "./src/ops/basic.ts";
export { chooseLinear, linear, type LinearOverride } from "./src/ops/linear.ts";
export {
  applyMask,
  countAbove,
  type KernelStyle,
  magnitudeMask,
  type MagnitudeMaskOptions,
  nmMask,
  outlierCount,
  type PruneKernelOptions,
  type PruneMask,
  readMask,
  releaseMask,
  rowMask,
  rowMaskFromScores,
  type RowMaskKernelOptions,
  type ScoredLinear,
  scoreSum,
  updateScalerRow,
  wandaRowMask,
} from "./src/ops/prune_ops.ts";

// ---- models -----------------------------------------------------------------------------------
export {
  type Architecture,
  type DType,
  type LinearName,
  LINEARS,
  linearShape,
  llamaConfig,
  type LlamaShape,
  type ModelConfig,
  type RopeLayout,
  SUPPORTED_ARCHITECTURES,
} from "./src/model/config.ts";
export type { ByteSource, TensorInfo, WeightSource } from "./src/model/weights.ts";
export { FileByteSource, MemoryByteSource } from "./src/model/bytes.ts";
export {
  attnNorm,
  EMBED,
  FINAL_NORM,
  linearBias,
  linearWeight,
  LM_HEAD,
  mlpNorm,
} from "./src/model/names.ts";
export {
  carveEmbedded,
  EMBEDDED_MODEL_NAME,
  type EmbeddedFiles,
  loadEmbeddedFiles,
} from "./src/model/embedded.ts";
export { MODEL_SPEC_FORMS, openWeights } from "./src/model/open.ts";
export {
  type ExpectedTensor,
  expectedTensors,
  hasHfWeights,
  hfModelConfig,
  openHuggingFace,
} from "./src/model/hf.ts";
export { llama2cConfig, type Llama2cHeader, openLlama2c, parseLlama2cHeader } from "./src/model/llama2c.ts";
export {
  encodeSafetensors,
  type SafetensorsEntry,
  SafetensorsFile,
  type SafetensorsTensor,
  writeSafetensors,
} from "./src/model/safetensors.ts";
export {
  exportHuggingFace,
  type ExportOptions,
  exportTensors,
  hfConfigJson,
  interleavedToHalf,
} from "./src/model/export.ts";
export {
  ForwardRunner,
  type GpuBlock,
  GpuModel,
  type GpuModelOptions,
  GROUP_LINEARS,
  type LinearInputGroup,
  type LinearInputObserver,
  type RunnerOptions,
  type SparseWeights,
} from "./src/model/forward.ts";

// ---- tokenizers and data ----------------------------------------------------------------------
export { type EncodeOptions, sha256Hex, type Tokenizer, type TokenStream } from "./src/data/tokenizer.ts";
export { Llama2cTokenizer, type Llama2cVocab, parseLlama2cTokenizer } from "./src/data/llama2c_tokenizer.ts";
export { HfTokenizer } from "./src/data/hf_tokenizer.ts";
export { openTokenizer } from "./src/data/open_tokenizer.ts";
export {
  BUILTIN_CORPORA,
  type BuiltinCorpus,
  loadCorpusText,
  tokenizeCorpus,
  type TokenizeCorpusOptions,
} from "./src/data/corpora.ts";
export { calibrationStart, calibrationWindows, evalWindows, type TokenIds } from "./src/data/windows.ts";

// ---- evaluation -------------------------------------------------------------------------------
export { type EvalOptions, type EvalResult, evaluatePerplexity } from "./src/eval/perplexity.ts";

// ---- pruning ----------------------------------------------------------------------------------
export {
  depthAllocation,
  dlpAllocation,
  type MixedNM,
  type NMRounding,
  numpyMean,
  numpySum,
  outlierRatio,
  owlAllocation,
  owlAllocationPerLinear,
  owlMixedNM,
  type OwlOptions,
  type OwlPerLinearOptions,
  pruneCount,
  roundHalfEven,
  uniformAllocation,
} from "./src/prune/allocation.ts";
export {
  type Allocation,
  ALLOCATIONS,
  type BlockReport,
  type DampingRetry,
  defaultAllocation,
  type Method,
  METHODS,
  type Pattern,
  prune,
  type PruneOptions,
  type PruneResult,
  validatePruneOptions,
} from "./src/prune/pipeline.ts";
export { type PruneReport, reportJson, reportMarkdown, reportSvg } from "./src/prune/report.ts";
export {
  decodeZeroSkipping,
  encodeZeroSkipping,
  MemoryWeightStore,
  type PrunedWeights,
  type PrunedWeightStore,
} from "./src/prune/store.ts";
export { FileWeightStore, type StoreSnapshot } from "./src/prune/file_store.ts";
export { CHECKPOINT_VERSION, type PruneCheckpoint } from "./src/prune/resume.ts";

// ---- sparse weights: host formats, GPU layout, kernels, launchers, files -----------------------
// (writeSparseSafetensors, saveSparseModel, loadSparseModel, openSparseModelDir and openModelWeights need
// Deno's file APIs.)
export {
  bitmapWords,
  nmFromPrunePattern,
  nmGroups,
  nmIndexBits,
  nmIndexBytesPerRow,
  type NMSparse,
  packNM,
  packUnstructured,
  sparseBytes,
  type SparseMatrix,
  type SparseValueDType,
  type SparseValues,
  sparsityOf,
  unpackNM,
  unpackSparse,
  unpackUnstructured,
  type UnstructuredSparse,
} from "./src/sparse/format.ts";
export {
  type GpuSparseChunk,
  type GpuSparseMatrix,
  releaseSparse,
  SPARSE_MAX_COLS,
  uploadSparse,
  type UploadSparseOptions,
} from "./src/sparse/upload.ts";
export {
  SPARSE_DELTA_BLOCK,
  SPARSE_DELTA_GROUP,
  SPARSE_GROUP,
  SPARSE_SLOT_FLOATS,
  SPARSE_TEX_WIDTH,
  sparseBiasBinding,
  type SparseFormat,
  type SparseGpuLayout,
  sparseLinearKey,
  type SparseLinearOptions,
  sparseLinearWgsl,
  sparseLinearWorkgroups,
  sparsePackXKey,
  sparsePackXWgsl,
  sparseQuads,
  sparseSlotCols,
  type SparseVariant,
  type SparseXSource,
} from "./kernels/sparse_linear.ts";
export {
  chooseSparseLinear,
  releaseSparseScratch,
  sparseLinear,
  type SparseLinearOverride,
} from "./src/ops/sparse.ts";
export {
  type DenseFileTensor,
  encodeSparseSafetensors,
  type FileArray,
  type FileDType,
  type SparseFileEntry,
  type SparseFileTensor,
  type SparseLayout,
  sparseLayoutOf,
  SparseSafetensorsFile,
  writeSparseSafetensors,
} from "./src/sparse/file.ts";
export {
  encodeSparseModelFile,
  loadSparseModel,
  openModelWeights,
  openSparseModelDir,
  planSparseModel,
  pruneSparseOptions,
  saveSparseModel,
  type SaveSparseOptions,
  SPARSE_MODEL_FILE,
  type SparseModel,
  type SparseModelPlan,
  type SparseModelSummary,
} from "./src/sparse/model.ts";
export {
  sparseWeightsFromZeros,
  ZEROS_MIN_SPARSITY,
  type ZerosOptions,
  type ZerosSparseWeights,
} from "./src/sparse/zeros.ts";
export {
  GEMV_TEX_SLOT_FLOATS,
  GEMV_TEX_WIDTH,
  gemvTexFormat,
  gemvTexKey,
  type GemvTexOptions,
  gemvTexWgsl,
  gemvTexWorkgroups,
} from "./kernels/linear_gemv_tex.ts";
export {
  gemvTex,
  gemvTexOptions,
  type GemvTexOverride,
  type GemvTexPiece,
  gemvTexSupported,
  type GpuTexMatrix,
  releaseGemvTex,
  releaseGemvTexScratch,
  uploadGemvTex,
  type UploadGemvTexOptions,
} from "./src/ops/gemv_tex.ts";
export { hessianKey, type HessianOptions, hessianWgsl, hessianWorkgroups } from "./kernels/hessian.ts";
export {
  CHOL_NB,
  CHOL_ROW_WG,
  choleskyKey,
  type CholeskyPass,
  type CholeskyTileOptions,
  choleskyTileWgsl,
  choleskyTileWorkgroups,
  choleskyWgsl,
} from "./kernels/cholesky.ts";
export {
  lazyKey,
  type LazyOptions,
  lazyWgsl,
  lazyWorkgroups,
  SGPT_MAX_BLOCK,
  SGPT_MAX_M,
  sparsegptKey,
  sparsegptObsKey,
  sparsegptObsWgsl,
  type SparseGPTPass,
  sparsegptWgsl,
} from "./kernels/sparsegpt.ts";
export {
  checkSparseGPTOptions,
  factorHessian,
  type FactorOptions,
  type Hessian,
  type HessianAllocOptions,
  type InverseFactor,
  newHessian,
  readHessian,
  readInverseFactorU,
  releaseHessian,
  releaseInverseFactor,
  sparsegptExpected,
  type SparseGPTKernelOptions,
  sparsegptPrune,
  type SparseGPTPruneOptions,
  updateHessian,
  uploadHessian,
} from "./src/ops/sparsegpt.ts";
export {
  DEVICE_CHUNK_MAX,
  generate,
  type GenerateOptions,
  type GenerateResult,
} from "./src/generate/generate.ts";
export { argmax, Sampler, type SamplerOptions, seededRandom } from "./src/generate/sampler.ts";
export {
  checkJobFits,
  parsePattern,
  patternName,
  pruneAndEvaluate,
  type PruneJob,
  type PruneJobSettings,
} from "./src/prune/job.ts";
