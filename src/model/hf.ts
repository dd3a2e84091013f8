/**
 * Reader of Hugging Face model directories (LLaMA, Mistral, Qwen2): `config.json` plus
 * `model.safetensors`, or shards listed by `model.safetensors.index.json`. Only the safetensors
 * headers are read up front; each tensor is read when asked for, with positioned file reads.
 * Every tensor the config implies is checked for presence and shape before anything else runs.
 * @module
 */
import { isAbsolute, join, relative } from "node:path";
import { ModelFormatError, UnsupportedError } from "../errors.ts";
import {
  type Architecture,
  LINEARS,
  linearShape,
  type ModelConfig,
  type RopeScaling,
  SUPPORTED_ARCHITECTURES,
} from "./config.ts";
import { FileByteSource } from "./bytes.ts";
import { attnNorm, EMBED, FINAL_NORM, linearBias, linearWeight, LM_HEAD, mlpNorm } from "./names.ts";
import { type SafetensorsEntry, SafetensorsFile } from "./safetensors.ts";
import { pathInfo } from "../util/files.ts";
import type { TensorInfo, WeightSource } from "./weights.ts";

const CONFIG_FILE = "config.json";
const SINGLE_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";

/**
 * A tensor the model needs: canonical name and shape.
 *
 * @example Check that a checkpoint holds every tensor its config implies, with the right shape
 * ```ts
 * import { EMBED, type ExpectedTensor, expectedTensors, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const expected: ExpectedTensor[] = expectedTensors(source.config);
 * const embedding: ExpectedTensor = { name: EMBED, shape: [32000, 288] };
 * assert.deepEqual(expected[0], embedding);
 * for (const t of expected) assert.deepEqual(source.info(t.name).shape, t.shape);
 * source.close();
 * ```
 */
export interface ExpectedTensor {
  /** Canonical tensor name. */
  name: string;
  /** Expected shape, outermost first. */
  shape: number[];
}

/**
 * Every tensor a model with config `c` has, in Hugging Face order (embedding, blocks, final norm,
 * LM head). The LM head is listed even when tied.
 *
 * @example The tensors of a 2-layer Qwen2 model (q/k/v biases included)
 * ```ts
 * import {
 *   attnNorm, EMBED, expectedTensors, hfModelConfig, linearBias, linearWeight, LM_HEAD,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const c = hfModelConfig({
 *   architectures: ["Qwen2ForCausalLM"], hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2,
 *   num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100, tie_word_embeddings: true,
 * }, "config.json");
 * const tensors = expectedTensors(c);
 * assert.equal(tensors.length, 1 + 2 * (2 + 7 + 3) + 2); // per block: 2 norms, 7 linears, 3 biases
 * const first = [EMBED, attnNorm(0), linearWeight(0, "q"), linearBias(0, "q")];
 * assert.deepEqual(tensors.slice(0, 4).map((t) => t.name), first);
 * assert.deepEqual(tensors.at(-1), { name: LM_HEAD, shape: [100, 64] }); // listed though tied
 * ```
 */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  return [...eachExpectedTensor(c)];
}

/**
 * The tensors of {@linkcode expectedTensors} one at a time, so that a loader checking them stops at
 * the first missing one (a config.json with a nonsense num_hidden_layers such as 10^9 would
 * otherwise build a list of billions of names before anything is checked).
 */
function* eachExpectedTensor(c: ModelConfig): Generator<ExpectedTensor> {
  yield { name: EMBED, shape: [c.vocabSize, c.dim] };
  for (let l = 0; l < c.nLayers; l++) {
    yield { name: attnNorm(l), shape: [c.dim] };
    for (const lin of LINEARS) {
      yield { name: linearWeight(l, lin), shape: linearShape(c, lin) };
      if (c.qkvBias && (lin === "q" || lin === "k" || lin === "v")) {
        yield { name: linearBias(l, lin), shape: [linearShape(c, lin)[0]] };
      }
    }
    yield { name: mlpNorm(l), shape: [c.dim] };
  }
  yield { name: FINAL_NORM, shape: [c.dim] };
  yield { name: LM_HEAD, shape: [c.vocabSize, c.dim] };
}

/** Reads typed fields of config.json with errors that name the file and the field. */
class ConfigFields {
  constructor(private readonly json: Record<string, unknown>, private readonly file: string) {}

  /** A positive integer; `fallback` applies when the field is absent or null. */
  int(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new ModelFormatError(
        `${this.file}: ${key} must be a positive integer, found ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** A positive number; `fallback` applies when the field is absent or null. */
  num(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) {
      throw new ModelFormatError(
        `${this.file}: ${key} must be a positive number, found ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** A token id; a list (several EOS ids) gives its first element. */
  tokenId(key: string, fallback: number): number {
    const v = this.json[key];
    const id = Array.isArray(v) ? v[0] : v ?? fallback;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw new ModelFormatError(`${this.file}: ${key} must be a token id, found ${JSON.stringify(v)}`);
    }
    return id;
  }

  /** Every id of a token-id field given as a list (checked as tokenId checks one). */
  tokenIds(key: string): number[] {
    const v = this.json[key];
    if (!Array.isArray(v)) return [];
    for (const id of v) {
      if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
        throw new ModelFormatError(`${this.file}: ${key} must list token ids, found ${JSON.stringify(v)}`);
      }
    }
    return v as number[];
  }

  get(key: string): unknown {
    return this.json[key];
  }
}

/** Features that change the math of the forward pass: refuse rather than compute something else. */
function rejectUnsupported(f: ConfigFields, file: string): void {
  const act = f.get("hidden_act");
  if (act !== undefined && act !== "silu") {
    throw new UnsupportedError(`${file}: hidden_act ${JSON.stringify(act)} is not supported (only "silu")`);
  }
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (f.get(key) === true) throw new UnsupportedError(`${file}: ${key}: true is not supported`);
  }
}

/**
 * The context owlgpu runs the model at: max_position_embeddings (default 2048, LlamaConfig's), cut
 * to the sliding attention window where the checkpoint has a shorter one (Mistral's
 * `sliding_window`; Qwen2's when `use_sliding_window`). The forward pass attends to every earlier
 * token, which equals sliding-window attention only for sequences within the window, so longer
 * ones are refused (as past the context) rather than computed differently from transformers.
 */
function context(f: ConfigFields, architecture: Architecture): number {
  const positions = f.int("max_position_embeddings", 2048);
  const windowed = architecture === "MistralForCausalLM" ||
    (architecture === "Qwen2ForCausalLM" && f.get("use_sliding_window") === true);
  if (!windowed || f.get("sliding_window") == null) return positions;
  return Math.min(positions, f.int("sliding_window"));
}

/**
 * rope_theta and the RoPE scaling: top-level `rope_theta` / `rope_scaling` (transformers 4) or
 * `rope_parameters` (transformers 5, both in one object).
 */
function ropeConfig(f: ConfigFields, file: string): { theta: number; scaling?: RopeScaling } {
  const params = f.get("rope_parameters");
  if (params === undefined || params === null) {
    const theta = f.num("rope_theta", 10000);
    const scaling = ropeScaling(f.get("rope_scaling"), `${file} rope_scaling`);
    return scaling ? { theta, scaling } : { theta };
  }
  const theta = configObject(params, `${file} rope_parameters`).num("rope_theta", 10000);
  const scaling = ropeScaling(params, `${file} rope_parameters`);
  return scaling ? { theta, scaling } : { theta };
}

/** The scalings whose frequencies do not depend on the sequence length; others change the math. */
const ROPE_SCALINGS = ["default", "linear", "llama3"];

/** A `rope_scaling` / `rope_parameters` object as a RopeScaling (undefined: none). */
function ropeScaling(json: unknown, where: string): RopeScaling | undefined {
  if (json === undefined || json === null) return undefined;
  const f = configObject(json, where);
  const type = f.get("rope_type") ?? f.get("type") ?? "default";
  if (!ROPE_SCALINGS.includes(type as string)) {
    throw new UnsupportedError(
      `${where}: rope type ${JSON.stringify(type)} is not supported (supported: ${ROPE_SCALINGS.join(", ")})`,
    );
  }
  if (type === "default") return undefined;
  const factor = f.num("factor");
  if (type === "linear") return { type, factor };
  const lowFreqFactor = f.num("low_freq_factor"), highFreqFactor = f.num("high_freq_factor");
  if (!(highFreqFactor > lowFreqFactor)) {
    throw new ModelFormatError(
      `${where}: high_freq_factor ${highFreqFactor} must exceed low_freq_factor ${lowFreqFactor}`,
    );
  }
  return {
    type: "llama3",
    factor,
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositions: f.int("original_max_position_embeddings"),
  };
}

function configObject(json: unknown, where: string): ConfigFields {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ModelFormatError(`${where} must be an object, found ${JSON.stringify(json)}`);
  }
  return new ConfigFields(json as Record<string, unknown>, where);
}

/**
 * Translate a parsed config.json into a ModelConfig. `file` names config.json in error messages.
 * @example A Mistral-7B-shaped config.json; absent fields take transformers' defaults
 * ```ts
 * import { hfModelConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const json = JSON.parse(`{
 *   "architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
 *   "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
 *   "vocab_size": 32000, "rope_theta": 1000000.0
 * }`);
 * const c = hfModelConfig(json, "Mistral-7B/config.json");
 * assert.deepEqual([c.headDim, c.nKvHeads, c.ropeTheta, c.ropeLayout], [128, 8, 1e6, "half"]);
 * assert.deepEqual([c.maxSeqLen, c.normEps, c.tiedEmbeddings, c.qkvBias], [2048, 1e-6, false, false]);
 * ```
 *
 * @example Llama 3.2's long-context RoPE scaling is read; scalings that depend on the sequence length are refused
 * ```ts
 * import { hfModelConfig, UnsupportedError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const json = {
 *   architectures: ["LlamaForCausalLM"], hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
 *   num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, rope_theta: 500000.0,
 *   max_position_embeddings: 131072, tie_word_embeddings: true,
 *   rope_scaling: {
 *     rope_type: "llama3", factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0,
 *     original_max_position_embeddings: 8192,
 *   },
 * };
 * assert.deepEqual(hfModelConfig(json, "config.json").ropeScaling, {
 *   type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192,
 * });
 * const yarn = { ...json, rope_scaling: { rope_type: "yarn", factor: 4 } };
 * assert.throws(() => hfModelConfig(yarn, "config.json"), UnsupportedError);
 * ```
 */
export function hfModelConfig(json: Record<string, unknown>, file: string): ModelConfig {
  if (typeof json.architectures === "string") {
    throw new ModelFormatError(
      `${file}: architectures must be a list, such as ["LlamaForCausalLM"], found ${
        JSON.stringify(json.architectures)
      }`,
    );
  }
  const arch = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
  if (!(SUPPORTED_ARCHITECTURES as readonly unknown[]).includes(arch)) {
    throw new UnsupportedError(
      `${file}: architecture ${JSON.stringify(arch ?? null)} is not supported; ` +
        `supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  const f = new ConfigFields(json, file);
  rejectUnsupported(f, file);
  const dim = f.int("hidden_size");
  const nHeads = f.int("num_attention_heads");
  const nKvHeads = f.int("num_key_value_heads", nHeads);
  if (json.head_dim == null && dim % nHeads !== 0) {
    throw new ModelFormatError(
      `${file}: hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`,
    );
  }
  const headDim = f.int("head_dim", dim / nHeads);
  if (nHeads % nKvHeads !== 0) {
    throw new ModelFormatError(
      `${file}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`,
    );
  }
  if (headDim % 2 !== 0) {
    throw new ModelFormatError(`${file}: head_dim ${headDim} is odd; RoPE needs it even`);
  }
  const architecture = arch as Architecture;
  const rope = ropeConfig(f, file);
  const eosIds = f.tokenIds("eos_token_id");
  return {
    architecture,
    dim,
    hiddenDim: f.int("intermediate_size"),
    nLayers: f.int("num_hidden_layers"),
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: f.int("vocab_size"),
    maxSeqLen: context(f, architecture),
    normEps: f.num("rms_norm_eps", 1e-6), // the transformers default of all three classes
    ropeTheta: rope.theta,
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
    ropeLayout: "half",
    tiedEmbeddings: json.tie_word_embeddings === true,
    qkvBias: architecture === "Qwen2ForCausalLM",
    bosTokenId: f.tokenId("bos_token_id", 1),
    eosTokenId: f.tokenId("eos_token_id", 2),
    ...(eosIds.length > 1 ? { eosTokenIds: eosIds } : {}),
  };
}

/** Parse a file holding a JSON object; NotFound passes through so each caller can word it. */
async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e;
    throw new ModelFormatError(`${path}: cannot read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ModelFormatError(`${path}: expected a JSON object`);
  }
  return json as Record<string, unknown>;
}

async function exists(path: string): Promise<boolean> {
  return (await pathInfo(path)) !== undefined;
}

/**
 * Whether directory `dir` holds Hugging Face weights (model.safetensors or its shard index).
 *
 * @example The embedded model has none on disk; a directory with model.safetensors has
 * ```ts
 * import { hasHfWeights } from "@owlgpu/owlgpu";
 * import { join } from "node:path";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await hasHfWeights(dir), false);
 * await Deno.writeFile(join(dir, "model.safetensors"), new Uint8Array(8));
 * assert.equal(await hasHfWeights(dir), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function hasHfWeights(dir: string): Promise<boolean> {
  return await exists(join(dir, SINGLE_FILE)) || await exists(join(dir, INDEX_FILE));
}

/** Tensor name → shard file name, from the single file or the index's weight_map. */
async function weightMap(dir: string): Promise<Map<string, string> | "single"> {
  if (await exists(join(dir, SINGLE_FILE))) return "single";
  const indexPath = join(dir, INDEX_FILE);
  if (!(await exists(indexPath))) {
    throw new ModelFormatError(
      `${dir}: no weights: expected ${SINGLE_FILE} or ${INDEX_FILE}` +
        " (owlgpu's CLIs and openModelWeights also open a directory of model.sparse.safetensors)",
    );
  }
  const map = (await readJson(indexPath)).weight_map;
  if (typeof map !== "object" || map === null || !Object.values(map).every((v) => typeof v === "string")) {
    throw new ModelFormatError(`${indexPath}: weight_map must map tensor names to shard file names`);
  }
  const shards = new Map(Object.entries(map as Record<string, string>));
  for (const shard of new Set(shards.values())) {
    // Shards live in the model directory: an index naming ../x or /x would read files outside it.
    if (shard === "" || isAbsolute(shard) || relative(dir, join(dir, shard)).startsWith("..")) {
      throw new ModelFormatError(
        `${indexPath}: shard ${JSON.stringify(shard)} is not a file name inside the model directory`,
      );
    }
  }
  return shards;
}

/** Open every shard the index names (headers only), with a clear error for a missing one. */
async function openShards(dir: string, shardNames: Iterable<string>): Promise<Map<string, SafetensorsFile>> {
  const files = new Map<string, SafetensorsFile>();
  try {
    for (const shard of new Set(shardNames)) {
      const path = join(dir, shard);
      if (!(await exists(path))) {
        throw new ModelFormatError(`${dir}: shard ${shard}, listed in ${INDEX_FILE}, is missing`);
      }
      const src = await FileByteSource.open(path);
      try {
        files.set(shard, await SafetensorsFile.open(src));
      } catch (e) {
        src.close();
        throw e;
      }
    }
  } catch (e) {
    for (const f of files.values()) f.close();
    throw e;
  }
  return files;
}

interface Located {
  file: SafetensorsFile;
  entry: SafetensorsEntry;
}

/** Find and shape-check every expected tensor. A tied LM head that is not stored is the embedding. */
function locate(
  dir: string,
  c: ModelConfig,
  find: (name: string) => SafetensorsFile | undefined,
): Map<string, Located> {
  const out = new Map<string, Located>();
  for (const t of eachExpectedTensor(c)) {
    const file = find(t.name);
    if (!file?.has(t.name)) {
      if (t.name === LM_HEAD && c.tiedEmbeddings) {
        out.set(LM_HEAD, out.get(EMBED)!);
        continue;
      }
      throw new ModelFormatError(
        `${dir}: tensor ${t.name} (shape [${t.shape}]) is missing${file ? ` from ${file.name}` : ""}; ` +
          `the checkpoint is incomplete or does not match config.json`,
      );
    }
    const entry = file.entry(t.name);
    if (entry.shape.join() !== t.shape.join()) {
      throw new ModelFormatError(
        `${file.name}: tensor ${t.name} has shape [${entry.shape}] but config.json implies [${t.shape}]`,
      );
    }
    out.set(t.name, { file, entry });
  }
  return out;
}

class HfWeights implements WeightSource {
  constructor(
    readonly config: ModelConfig,
    readonly description: string,
    private readonly tensors: Map<string, Located>,
    private readonly files: SafetensorsFile[],
  ) {}

  /** The dtype of the block linears (layer 0's q_proj stands for all). */
  get dtype() {
    return this.get(linearWeight(0, "q")).entry.dtype;
  }

  tensorNames(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const { entry } = this.get(name);
    return { name, dtype: entry.dtype, shape: [...entry.shape] };
  }

  readRaw(name: string): Promise<Uint8Array> {
    const { file, entry } = this.get(name);
    return file.readRaw(entry.name);
  }

  readF32(name: string): Promise<Float32Array> {
    const { file, entry } = this.get(name);
    return file.readF32(entry.name);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private get(name: string): Located {
    const t = this.tensors.get(name);
    if (!t) throw new ModelFormatError(`${this.description}: no tensor named ${name}`);
    return t;
  }
}

/**
 * Open a Hugging Face model directory as a WeightSource under canonical names.
 * @example Export stories15M as an f16 Hugging Face directory and open it
 * ```ts
 * import { EMBED, exportHuggingFace, openHuggingFace, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const dir = await Deno.makeTempDir();
 * await exportHuggingFace(source, dir, { dtype: "f16" }); // config.json + model.safetensors
 * const w = await openHuggingFace(dir);
 * assert.equal(w.dtype, "f16");
 * assert.deepEqual(w.config, { ...source.config, ropeLayout: "half" }); // transformers' RoPE layout
 * const emb = await w.readF32(EMBED); // f16 on disk, f32 here
 * assert.deepEqual(emb, (await source.readF32(EMBED)).map(Math.f16round));
 * w.close();
 * source.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openHuggingFace(dir: string): Promise<WeightSource> {
  const configPath = join(dir, CONFIG_FILE);
  let json: Record<string, unknown>;
  try {
    json = await readJson(configPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new ModelFormatError(
      `${dir}: no ${CONFIG_FILE}; a Hugging Face model directory needs config.json next to its safetensors files`,
    );
  }
  const config = hfModelConfig(json, configPath);
  const map = await weightMap(dir);
  const files = await openShards(dir, map === "single" ? [SINGLE_FILE] : map.values());
  try {
    const find = (name: string) => files.get(map === "single" ? SINGLE_FILE : map.get(name) ?? "");
    return new HfWeights(config, dir, locate(dir, config, find), [...files.values()]);
  } catch (e) {
    for (const f of files.values()) f.close();
    throw e;
  }
}
