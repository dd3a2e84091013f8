/**
 * Hugging Face tokenizers (`tokenizer.json`, plus `tokenizer_config.json` when there is one)
 * through `@huggingface/tokenizers` (the pure-JS library), behind owlgpu's `Tokenizer` interface.
 *
 * The protocol for Hugging Face models is the model's own tokenizer on the whole text: `encode`
 * hands the text over unchanged, and `bos: true` means "add the special tokens", i.e. whatever
 * the tokenizer's post-processor adds (for LLaMA, its BOS). When `tokenizer_config.json` says
 * `add_bos_token: true` but the post-processor adds none, the BOS is prepended, as transformers'
 * LLaMA tokenizer does.
 * @module
 */
import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { ArgumentError, ModelFormatError, UnsupportedError } from "../errors.ts";
import { type EncodeOptions, sha256Hex, type Tokenizer, type TokenStream } from "./tokenizer.ts";

/** Part of the fingerprint: bump it whenever the wrapper's encoding changes, to invalidate caches. */
const ALGORITHM = "owlgpu/hf-tokenizers-0.2.0/v2";
/** Special-token spellings tried, in order, when tokenizer_config.json names no BOS / EOS. */
const BOS_NAMES = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];
const EOS_NAMES = ["</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"];

type Json = Record<string, unknown>;

function parseJson(bytes: Uint8Array, name: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ModelFormatError(`${name}: not valid JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ModelFormatError(`${name}: expected a JSON object`);
  }
  return value as Json;
}

/** A special token named by tokenizer_config.json: a string, or an object with `content`. */
function configToken(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as Json).content === "string") {
    return (value as Json).content as string;
  }
  return undefined;
}

/**
 * Id of the model's unknown token (`model.unk_token` in tokenizer.json), or -1 when it names none
 * or names a token that is not in the vocabulary. The library does not use it for every model type
 * (0.2.0 leaves an unknown word of a WordLevel model `undefined`), so `encode` applies it itself.
 */
function modelUnkId(json: Json, lib: HfLibTokenizer): number {
  const model = json.model as Json | null | undefined;
  const unk = model !== null && typeof model === "object" ? model.unk_token : undefined;
  if (typeof unk !== "string") return -1;
  const id = lib.token_to_id(unk) ??
    (Array.isArray(json.added_tokens) ? json.added_tokens : []).find((t: Json) => t?.content === unk)?.id;
  return Number.isInteger(id) ? id : -1;
}

/**
 * A Hugging Face tokenizer. Build it with {@linkcode HfTokenizer.fromBytes}; it holds no Deno API,
 * so it works in a browser.
 *
 * @example A tiny word-level tokenizer.json, with a tokenizer_config.json that asks for BOS
 * ```ts
 * import { HfTokenizer, ModelFormatError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = (o: object) => new TextEncoder().encode(JSON.stringify(o));
 * const json = bytes({
 *   added_tokens: [{ id: 0, content: "<s>", special: true }],
 *   normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
 *   model: {
 *     type: "WordLevel", unk_token: "<unk>",
 *     vocab: { "<s>": 0, "<unk>": 1, once: 2, upon: 3, a: 4, time: 5 },
 *   },
 * });
 * const tok = HfTokenizer.fromBytes(json, bytes({ add_bos_token: true, bos_token: "<s>" }));
 * assert.deepEqual([tok.kind, tok.vocabSize, tok.bosId, tok.eosId], ["huggingface", 6, 0, -1]);
 * const ids = tok.encode("once upon a time", { bos: true });
 * assert.deepEqual(ids, [0, 2, 3, 4, 5]);
 * assert.equal(tok.decode(ids), "once upon a time"); // special tokens are skipped
 * assert.throws(() => HfTokenizer.fromBytes(bytes({})), ModelFormatError);
 * ```
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = "huggingface";
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;

  readonly #lib: HfLibTokenizer;
  readonly #addBos: boolean;
  readonly #unkId: number;
  readonly #name: string;
  readonly #sources: Uint8Array[];
  #fingerprint?: Promise<string>;

  private constructor(lib: HfLibTokenizer, config: Json, sources: Uint8Array[], unkId: number, name: string) {
    this.#lib = lib;
    this.#unkId = unkId;
    this.#name = name;
    this.#sources = sources;
    const vocab = lib.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    const find = (configured: unknown, names: string[]): number => {
      const named = configToken(configured);
      for (const name of named === undefined ? names : [named]) {
        const id = lib.token_to_id(name);
        if (id !== undefined) return id;
      }
      return -1;
    };
    this.bosId = find(config.bos_token, BOS_NAMES);
    this.eosId = find(config.eos_token, EOS_NAMES);
    this.#addBos = config.add_bos_token === true && this.bosId >= 0;
  }

  /**
   * Build a tokenizer from the bytes of `tokenizer.json` and, optionally, `tokenizer_config.json`.
   * @param name shown in error messages (e.g. the directory)
   * @throws {ModelFormatError} when a file is not valid JSON or the library rejects it
   */
  static fromBytes(tokenizerJson: Uint8Array, configJson?: Uint8Array, name = "tokenizer.json"): HfTokenizer {
    const json = parseJson(tokenizerJson, name);
    const config = configJson === undefined ? {} : parseJson(configJson, `${name}: tokenizer_config.json`);
    let lib: HfLibTokenizer;
    try {
      lib = new HfLibTokenizer(json, config);
    } catch (e) {
      throw new ModelFormatError(
        `${name}: @huggingface/tokenizers cannot build this tokenizer (${(e as Error).message})`,
      );
    }
    const sources = [tokenizerJson.slice(), configJson?.slice() ?? new Uint8Array(0)];
    return new HfTokenizer(lib, config, sources, modelUnkId(json, lib), name);
  }

  /**
   * Token ids of the whole text; `bos` adds the tokenizer's own special tokens (see the module doc).
   * A piece outside the vocabulary becomes the model's unknown token (`model.unk_token`).
   * @throws {UnsupportedError} when a piece is outside the vocabulary and the model has no unknown token
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const bos = opts.bos ?? false;
    const { ids, tokens } = this.#lib.encode(text, { add_special_tokens: bos });
    for (let i = 0; i < ids.length; i++) {
      if (Number.isInteger(ids[i])) continue;
      if (this.#unkId < 0) {
        throw new UnsupportedError(
          `${this.#name}: the piece ${JSON.stringify(tokens[i])} is not in the vocabulary, ` +
            "and model.unk_token names no token of it; remove it from the text or use a tokenizer that covers it",
        );
      }
      ids[i] = this.#unkId;
    }
    if (bos && this.#addBos && ids[0] !== this.bosId) ids.unshift(this.bosId);
    return ids;
  }

  /** Text of a whole sequence, special tokens skipped (a LLaMA decoder then drops the leading space). */
  decode(ids: readonly number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new ArgumentError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    // The library rejects an empty list.
    return ids.length === 0 ? "" : this.#lib.decode([...ids], { skip_special_tokens: true });
  }

  /** `id` decoded after `prevId`: what decoding the pair adds to decoding `prevId` alone. */
  decodePiece(prevId: number, id: number): string {
    if (prevId < 0) return this.decode([id]);
    const before = this.decode([prevId]);
    const both = this.decode([prevId, id]);
    return both.startsWith(before) ? both.slice(before.length) : this.decode([id]);
  }

  /**
   * A streaming decoder: it decodes the whole sequence so far after every token and hands out
   * what was added, holding back while the text ends in U+FFFD (a character still incomplete).
   * Quadratic in the length, which is fine for generation lengths.
   */
  decodeStream(): TokenStream {
    const ids: number[] = [];
    let emitted = 0;
    let text = "";
    return {
      push: (id: number) => {
        ids.push(id);
        text = this.decode(ids);
        if (text.endsWith("\uFFFD")) return "";
        const out = text.slice(emitted);
        emitted = text.length;
        return out;
      },
      flush: () => {
        const out = text.slice(emitted);
        emitted = text.length;
        return out;
      },
    };
  }

  /** sha256 of the wrapper's version, tokenizer.json and tokenizer_config.json. */
  fingerprint(): Promise<string> {
    const [json, config] = this.#sources;
    const header = new TextEncoder().encode(`${ALGORITHM}\0${json.byteLength}\0`);
    this.#fingerprint ??= sha256Hex(header, json, config);
    return this.#fingerprint;
  }
}
