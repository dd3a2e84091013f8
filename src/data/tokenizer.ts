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

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend the beginning-of-sequence token (default false). */
  bos?: boolean;
}

/** Incremental decoder for streaming generation, from {@linkcode Tokenizer.decodeStream}. */
export interface TokenStream {
  /** Text completed by this token (possibly ""; held back while a UTF-8 character is partial). */
  push(id: number): string;
  /** Whatever is still held back (an incomplete character comes out as U+FFFD). */
  flush(): string;
}

/** A text tokenizer: llama2.c (`Llama2cTokenizer`) or Hugging Face (`HfTokenizer`). */
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

/** Lowercase hex sha256 of `parts` concatenated (WebCrypto, so browsers have it too). */
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
