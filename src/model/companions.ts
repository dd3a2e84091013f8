/**
 * The files that make a written model directory usable on its own: the tokenizer and its
 * configuration, copied from where the model came from.
 * @module
 */
import { dirname, join } from "node:path";
import { EMBEDDED_MODEL_NAME, loadEmbeddedFiles } from "./embedded.ts";

/** Tokenizer-related files of a Hugging Face directory that are copied when present. */
export const HF_TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "tokenizer.model",
];

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Tokenizer files for a model spec, by file name: the embedded tokenizer.bin, a directory's
 * Hugging Face tokenizer files (and a tokenizer.bin there), or the tokenizer.bin beside a llama2.c
 * checkpoint.
 */
export async function tokenizerFiles(spec: string): Promise<Record<string, Uint8Array>> {
  if (spec === EMBEDDED_MODEL_NAME) return { "tokenizer.bin": (await loadEmbeddedFiles()).tokenizer };
  const files: Record<string, Uint8Array> = {};
  const isDir = (await Deno.stat(spec)).isDirectory;
  // A directory may hold a llama2.c tokenizer.bin (owlgpu's export of a llama2.c model does).
  const names = isDir ? [...HF_TOKENIZER_FILES, "tokenizer.bin"] : ["tokenizer.bin"];
  for (const name of names) {
    const bytes = await readIfExists(join(isDir ? spec : dirname(spec), name));
    if (bytes) files[name] = bytes;
  }
  return files;
}
