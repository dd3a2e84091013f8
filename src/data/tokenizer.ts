/**
 * The interface every tokenizer implements (llama2.c `tokenizer.bin`, Hugging Face
 * `tokenizer.json`), so that corpora, windows and generation never care which one a model uses.
 *
 * Decoding comes in three forms, because generation streams text one token at a time while a
 * character may be split over several byte-fallback tokens:
 * - {@linkcode Tokenizer.decode} turns a whole sequence into text (exact);
 * - {@linkcode Tokenizer.decodeStream} returns a stateful decoder whose `push(id)` gives the text
 *   that became complete with that token (a UTF-8 character split over byte tokens comes out whole,
 *   once its last byte arrives); use it for streaming;
 * - {@linkcode Tokenizer.decodePiece} is the stateless llama2.c `decode(prev, id)`: one piece on
 *   its own, where a lone byte of a multi-byte character reads as U+FFFD.
 *
 * This module and the tokenizers themselves use no Deno API, so they run in a browser too.
 * @module
 */

/**
 * Options of {@linkcode Tokenizer.encode}.
 *
 * @example `bos: true` puts the beginning-of-sequence id first, as every corpus is tokenized
 * ```ts
 * import { type EncodeOptions, openTokenizer } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tok = await openTokenizer("stories15M");
 * const opts: EncodeOptions = { bos: true };
 * const plain = tok.encode("Once upon a time");
 * assert.deepEqual(tok.encode("Once upon a time", opts), [tok.bosId, ...plain]);
 * assert.equal(tok.bosId, 1);
 * ```
 */
export interface EncodeOptions {
  /** Prepend the beginning-of-sequence token (default false). */
  bos?: boolean;
}

/**
 * Incremental decoder for streaming generation, from {@linkcode Tokenizer.decodeStream}.
 *
 * @example Stream text token by token; an emoji spelled as four byte tokens comes out whole
 * ```ts
 * import { openTokenizer, type TokenStream } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tok = await openTokenizer("stories15M");
 * const ids = tok.encode("Hi 🙂!", { bos: true });
 * const stream: TokenStream = tok.decodeStream();
 * const pieces = ids.map((id) => stream.push(id));
 * assert.deepEqual(pieces.filter((p) => p !== ""), ["Hi", " ", "🙂", "!"]); // "" while the emoji is partial
 * assert.equal(pieces.join("") + stream.flush(), tok.decode(ids));
 * ```
 */
export interface TokenStream {
  /** Text completed by this token (possibly ""; held back while a UTF-8 character is partial). */
  push(id: number): string;
  /** Whatever is still held back (an incomplete character comes out as U+FFFD). */
  flush(): string;
}

/**
 * A text tokenizer: llama2.c (`Llama2cTokenizer`) or Hugging Face (`HfTokenizer`).
 *
 * @example Code written against the interface works with either kind
 * ```ts
 * import { openTokenizer, type Tokenizer } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * function roundTrip(tok: Tokenizer, text: string): string {
 *   const ids = tok.encode(text, { bos: true });
 *   assert(ids.every((id) => id >= 0 && id < tok.vocabSize));
 *   return tok.decode(ids);
 * }
 * const tok = await openTokenizer("stories15M");
 * assert.deepEqual([tok.kind, tok.vocabSize, tok.bosId, tok.eosId], ["llama2c", 32000, 1, 2]);
 * assert.equal(roundTrip(tok, "Lily saw a big dog.\nIt was happy."), "Lily saw a big dog.\nIt was happy.");
 * assert.match(await tok.fingerprint(), /^[0-9a-f]{64}$/);
 * ```
 */
export interface Tokenizer {
  /** Which file format it was built from. */
  readonly kind: "llama2c" | "huggingface";
  /** One more than the largest token id. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id (llama2.c: 1), or -1 when the tokenizer has none. */
  readonly bosId: number;
  /** End-of-sequence id (llama2.c: 2), or -1 when the tokenizer has none. */
  readonly eosId: number;
  /** Token ids of `text`, treated as one document. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Text of a whole id sequence; BOS/EOS are dropped, and a leading space right after BOS. */
  decode(ids: readonly number[]): string;
  /** Text of `id` alone, following `prevId` (-1 for none): see the module doc for its limits. */
  decodePiece(prevId: number, id: number): string;
  /** A fresh streaming decoder (its first token is taken to follow nothing). */
  decodeStream(): TokenStream;
  /**
   * sha256 (hex) over the tokenizer's source bytes and its encoding-algorithm version: equal
   * fingerprints encode every text identically, so it keys caches of token ids.
   */
  fingerprint(): Promise<string>;
}

/**
 * Lowercase hex sha256 of `parts` concatenated (WebCrypto, so browsers have it too).
 *
 * @example The FIPS 180-2 test vector "abc", whole or in parts
 * ```ts
 * import { sha256Hex } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const enc = new TextEncoder();
 * const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
 * assert.equal(await sha256Hex(enc.encode("abc")), abc);
 * assert.equal(await sha256Hex(enc.encode("a"), enc.encode("bc")), abc);
 * ```
 */
export async function sha256Hex(...parts: Uint8Array[]): Promise<string> {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.byteLength;
  }
  const digest = await crypto.subtle.digest("SHA-256", all);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
