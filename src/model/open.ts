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

/**
 * The accepted forms of a model argument, for error messages and help texts.
 *
 * @example The message of a model that is not found lists the accepted forms
 * ```ts
 * import { MODEL_SPEC_FORMS, ModelFormatError, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.ok(MODEL_SPEC_FORMS.startsWith(`"stories15M" (the embedded model)`));
 * await assert.rejects(
 *   openWeights("no/such/model"),
 *   (e) => e instanceof ModelFormatError && e.message.endsWith(`not found; pass ${MODEL_SPEC_FORMS}`),
 * );
 * ```
 */
export const MODEL_SPEC_FORMS: string =
  `"${EMBEDDED_MODEL_NAME}" (the embedded model), a Hugging Face model directory (config.json + ` +
  `*.safetensors), or a llama2.c checkpoint file (.bin)`;

/**
 * Open a model by name or path.
 * @example Open the embedded model, then a llama2.c checkpoint file by its path
 * ```ts
 * import { LM_HEAD, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const w = await openWeights("stories15M");
 * assert.deepEqual([w.config.nLayers, w.config.dim, w.dtype, w.description], [6, 288, "f32", "stories15M"]);
 * assert.deepEqual(w.info(LM_HEAD).shape, [32000, 288]);
 *
 * // A llama2.c checkpoint file: a header (dim 2, hidden 2, 1 layer, 1 head, 1 KV head, vocab 2, context 1)
 * // then 40 zero floats (embedding 4, three norms 6, q/k/v/o 16, w1/w2/w3 12, RoPE tables 2).
 * const file = new Int32Array(7 + 40);
 * file.set([2, 2, 1, 1, 1, 2, 1]);
 * const path = await Deno.makeTempFile({ suffix: ".bin" });
 * await Deno.writeFile(path, new Uint8Array(file.buffer));
 * const tiny = await openWeights(path);
 * assert.deepEqual([tiny.config.dim, tiny.config.vocabSize, tiny.description], [2, 2, path]);
 * tiny.close();
 * await Deno.remove(path);
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
