/**
 * Find and open a model's tokenizer on disk (Deno). The tokenizers themselves take bytes
 * (`Llama2cTokenizer.fromBytes`, `HfTokenizer.fromBytes`), so a browser builds them from fetched files.
 * @module
 */
import { basename, dirname, join } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { EMBEDDED_MODEL_NAME, loadEmbeddedFiles } from "../model/embedded.ts";
import { HfTokenizer } from "./hf_tokenizer.ts";
import { Llama2cTokenizer } from "./llama2c_tokenizer.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { pathInfo as stat } from "../util/files.ts";

async function openHf(dir: string, json: string): Promise<Tokenizer> {
  const configPath = join(dir, "tokenizer_config.json");
  const config = (await stat(configPath))?.isFile ? await Deno.readFile(configPath) : undefined;
  return HfTokenizer.fromBytes(await Deno.readFile(json), config, json);
}

async function openLlama2c(path: string): Promise<Tokenizer> {
  return Llama2cTokenizer.fromBytes(await Deno.readFile(path), path);
}

/**
 * Open the tokenizer for a model spec, as the CLIs take it:
 * - `"stories15M"`: the embedded llama2.c tokenizer;
 * - a directory: `DIR/tokenizer.json` (with `DIR/tokenizer_config.json` when present), else
 *   `DIR/tokenizer.bin`;
 * - a file named `tokenizer.json` or `tokenizer.bin`: that tokenizer;
 * - any other file (a llama2.c checkpoint such as `FILE.bin`): `tokenizer.bin` beside it.
 * @throws {ModelFormatError} when no tokenizer is found (the message lists the paths tried) or
 * the file is invalid
 *
 * @example
 * ```ts
 * import { openTokenizer } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tok = await openTokenizer("stories15M");
 * assert.deepEqual(tok.encode("Hello world!"), [15043, 3186, 29991]);
 * ```
 */
export async function openTokenizer(spec: string): Promise<Tokenizer> {
  if (spec === EMBEDDED_MODEL_NAME) {
    return Llama2cTokenizer.fromBytes(
      (await loadEmbeddedFiles()).tokenizer,
      `${EMBEDDED_MODEL_NAME} tokenizer.bin`,
    );
  }
  const info = await stat(spec);
  if (info === undefined) {
    throw new ModelFormatError(
      `${spec}: no such file or directory; give "${EMBEDDED_MODEL_NAME}", a model directory or a llama2.c checkpoint`,
    );
  }
  let tried: string[];
  if (info.isDirectory) {
    const json = join(spec, "tokenizer.json");
    if ((await stat(json))?.isFile) return openHf(spec, json);
    const bin = join(spec, "tokenizer.bin");
    if ((await stat(bin))?.isFile) return openLlama2c(bin);
    tried = [json, bin];
  } else {
    const base = basename(spec);
    if (base === "tokenizer.json") return openHf(dirname(spec), spec);
    if (base === "tokenizer.bin") return openLlama2c(spec);
    const bin = join(dirname(spec), "tokenizer.bin");
    if ((await stat(bin))?.isFile) return openLlama2c(bin);
    tried = [bin];
  }
  throw new ModelFormatError(
    `no tokenizer for ${spec} (tried ${tried.join(", ")}): put the model's tokenizer.json ` +
      "(Hugging Face) or tokenizer.bin (llama2.c) there",
  );
}

/**
 * Throw {@linkcode ModelFormatError} when `ids` (what the tokenizer of `spec` produced) reach past the
 * model's vocabulary: the tokenizer belongs to another model, and the embedding would read no row.
 */
export function checkTokenizerFits(spec: string, ids: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocabSize) {
      throw new ModelFormatError(
        `${spec}: the tokenizer produced id ${ids[i]} but the model's vocabulary has ${vocabSize} entries; ` +
          "the tokenizer does not belong to this model",
      );
    }
  }
}
