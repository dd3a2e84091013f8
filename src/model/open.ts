/**
 * One entry point from a user's model argument to a WeightSource: the embedded stories15M, a
 * llama2.c checkpoint file, or a Hugging Face directory.
 * @module
 */
import { ModelFormatError, UnsupportedError } from "../errors.ts";
import { FileByteSource, MemoryByteSource } from "./bytes.ts";
import { EMBEDDED_MODEL_NAME, loadEmbeddedFiles } from "./embedded.ts";
import { openHuggingFace } from "./hf.ts";
import { openLlama2c } from "./llama2c.ts";
import type { WeightSource } from "./weights.ts";

/** The accepted forms of a model argument, for error messages and help texts. */
export const MODEL_SPEC_FORMS: string =
  `"${EMBEDDED_MODEL_NAME}" (the embedded model), a Hugging Face model directory (config.json + ` +
  `*.safetensors), or a llama2.c checkpoint file (.bin)`;

/**
 * Open a model by name or path.
 * @example
 * ```ts
 * const w = await openWeights("stories15M");
 * w.config.nLayers; // 6
 * ```
 */
export async function openWeights(spec: string): Promise<WeightSource> {
  if (spec === EMBEDDED_MODEL_NAME) {
    const { checkpoint } = await loadEmbeddedFiles();
    return openLlama2c(new MemoryByteSource(checkpoint, EMBEDDED_MODEL_NAME), EMBEDDED_MODEL_NAME);
  }
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(spec);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new ModelFormatError(`model ${JSON.stringify(spec)} not found; pass ${MODEL_SPEC_FORMS}`);
  }
  if (stat.isDirectory) return openHuggingFace(spec);
  if (spec.endsWith(".safetensors")) {
    throw new UnsupportedError(
      `${spec}: pass the directory that holds it and its config.json, not the .safetensors file itself`,
    );
  }
  const src = await FileByteSource.open(spec);
  try {
    return await openLlama2c(src, spec);
  } catch (e) {
    src.close();
    throw e;
  }
}
