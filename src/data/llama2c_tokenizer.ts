/**
 * llama2.c's tokenizer (`tokenizer.bin`): parsing, the protocol's document rules and a fast BPE
 * that gives exactly the result of run.c's `encode` loop.
 *
 * Encoding follows docs/PROTOCOL.md: the text is split on "\n"; the first line gets a dummy
 * prefix " " (when it is not empty); each line is encoded on its own and lines are joined with
 * the newline byte token (id 13); BOS (id 1) comes once at the start when asked for. Within a
 * line, each UTF-8 character becomes its piece id, or its bytes as byte tokens (byte b is id b + 3)
 * when no piece spells it; then run.c repeatedly merges the adjacent pair whose concatenation is a
 * piece of the highest score (strict >, so ties go to the leftmost pair, and only scores above
 * -1e10 count). Ids 0..258 (controls and byte tokens) take part in no string lookup: the original
 * tokenizer spells byte tokens '<0x61>', so they never equal text and never merge, while this
 * tokenizer.bin stores the raw byte, which would collide with ordinary pieces.
 *
 * Speed. run.c rescans the whole line after every merge (quadratic in the line length). Here:
 * - merges come from a pair table (left id, right id) -> merged id, built once from the pieces;
 * - a line is a linked list of symbols, and candidate merges sit in a binary heap keyed by
 *   (score desc, left position asc). Merging keeps the left node, so original positions keep the
 *   list order and the smallest one is the leftmost pair. Entries made stale by a merge are
 *   skipped when popped; every current pair has an entry with its current key, so the first valid
 *   entry popped is exactly run.c's choice;
 * - when no piece holds a non-space character followed by a space (true of LLaMA's vocabulary,
 *   checked at load), no merge can straddle a point where a space follows a non-space (a merged
 *   token spells the text it covers). So a line is cut there into words: run.c's choice, when it
 *   falls in a word, is also that word's best and leftmost pair, and a word changes only by its
 *   own merges, so each word ends as it would alone. Each distinct word is encoded once (memo).
 *
 * Decoding follows run.c's `decode`: byte tokens give their raw byte, a piece right after BOS
 * loses its leading space; `decodeStream` feeds the bytes through a streaming TextDecoder.
 * @module
 */
import { ArgumentError, ModelFormatError } from "../errors.ts";
import { type EncodeOptions, sha256Hex, type Tokenizer, type TokenStream } from "./tokenizer.ts";

/** Part of the fingerprint: bump it whenever the encoding rules change, to invalidate caches. */
const ALGORITHM = "owlgpu/llama2c-bpe/v1";
const BOS_ID = 1;
const EOS_ID = 2;
/** Byte b is token b + 3. */
const BYTE_OFFSET = 3;
const NEWLINE_ID = 0x0a + BYTE_OFFSET;
/** Ids below this (controls, byte tokens) take part in no string lookup. */
const FIRST_PIECE = BYTE_OFFSET + 256;
/** run.c starts the best score at -1e10 and compares with a strict >. */
const MIN_SCORE = Math.fround(-1e10);
/** The word memo is dropped when it grows past this many words (it refills from the next line). */
const MEMO_LIMIT = 1 << 18;

/**
 * The contents of a llama2.c `tokenizer.bin`.
 *
 * @example The pieces and scores of the embedded stories15M tokenizer
 * ```ts
 * import {
 *   Llama2cTokenizer, type Llama2cVocab, loadEmbeddedFiles, parseLlama2cTokenizer,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = (await loadEmbeddedFiles()).tokenizer;
 * const vocab: Llama2cVocab = parseLlama2cTokenizer(bytes);
 * assert.equal(vocab.pieces.length, vocab.scores.length);
 * const tok = Llama2cTokenizer.fromBytes(bytes);
 * assert.equal(tok.vocabSize, vocab.pieces.length);
 * const [once] = tok.encode("Once"); // the first line gets a leading space
 * assert.equal(new TextDecoder().decode(vocab.pieces[once]), " Once");
 * ```
 */
export interface Llama2cVocab {
  /** The file's max_token_length field (llama2.c sizes buffers with it). */
  maxTokenLength: number;
  /** Raw bytes of each piece, by id. */
  pieces: Uint8Array[];
  /** Merge score of each piece, by id. */
  scores: Float32Array;
}

/**
 * Parse a llama2.c `tokenizer.bin`: int32 max_token_length, then per token f32 score, int32
 * length and that many bytes, up to the end of the file (the file does not store the count).
 * @throws {ModelFormatError} when the file is truncated, a length is negative, or it holds fewer
 * than the 259 control and byte tokens a llama2.c vocabulary starts with.
 *
 * @example Parse the embedded tokenizer.bin; a truncated copy is a ModelFormatError
 * ```ts
 * import { loadEmbeddedFiles, ModelFormatError, parseLlama2cTokenizer } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = (await loadEmbeddedFiles()).tokenizer;
 * const { maxTokenLength, pieces } = parseLlama2cTokenizer(bytes);
 * assert.equal(pieces.length, 32000);
 * assert.equal(maxTokenLength, Math.max(...pieces.map((p) => p.length)));
 * assert.equal(new TextDecoder().decode(pieces[1]), "\n<s>\n"); // id 1 is BOS
 * assert.throws(() => parseLlama2cTokenizer(bytes.subarray(0, bytes.length - 3)), ModelFormatError);
 * ```
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, name = "tokenizer.bin"): Llama2cVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    throw new ModelFormatError(`${name}: ${bytes.byteLength} bytes, too short for a llama2.c tokenizer`);
  }
  const maxTokenLength = view.getInt32(0, true);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < bytes.byteLength) {
    const id = pieces.length;
    if (off + 8 > bytes.byteLength) {
      throw new ModelFormatError(
        `${name}: truncated in the header of token ${id} (byte ${off} of ${bytes.byteLength}); ` +
          "the file is incomplete or not a llama2.c tokenizer",
      );
    }
    scores.push(view.getFloat32(off, true));
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || off + len > bytes.byteLength) {
      throw new ModelFormatError(
        `${name}: token ${id} claims ${len} bytes at byte ${off}, but ${bytes.byteLength - off} remain; ` +
          "the file is truncated or not a llama2.c tokenizer",
      );
    }
    pieces.push(bytes.subarray(off, off + len));
    off += len;
  }
  if (pieces.length < FIRST_PIECE) {
    throw new ModelFormatError(
      `${name}: ${pieces.length} tokens; a llama2.c vocabulary has at least ${FIRST_PIECE} ` +
        "(<unk>, BOS, EOS and 256 byte tokens)",
    );
  }
  return { maxTokenLength, pieces, scores: Float32Array.from(scores) };
}

/**
 * Growable scratch arrays for one word: its symbols as a linked list, and a binary heap of
 * candidate merges whose keys sit in the heap slots themselves (no indirection when sifting).
 */
class Scratch {
  tok = new Int32Array(64);
  prev = new Int32Array(64);
  next = new Int32Array(64);
  /** Bumped whenever the pair starting at a node changes (its id, its right neighbour or that one's id). */
  stamp = new Int32Array(64);
  /** Heap slots: merged score, left node, the left node's stamp when pushed, merged id. */
  hScore = new Float32Array(192);
  hLeft = new Int32Array(192);
  hStamp = new Int32Array(192);
  hMerged = new Int32Array(192);

  /** Make room for `symbols` symbols and their at most 3 * symbols heap entries. */
  reserve(symbols: number): void {
    if (this.tok.length < symbols) {
      const n = Math.max(symbols, 2 * this.tok.length);
      this.tok = new Int32Array(n);
      this.prev = new Int32Array(n);
      this.next = new Int32Array(n);
      this.stamp = new Int32Array(n);
    }
    // Initial pairs (n - 1) plus at most two new pairs per merge (at most n - 1 merges).
    const entries = 3 * symbols;
    if (this.hScore.length < entries) {
      const n = Math.max(entries, 2 * this.hScore.length);
      this.hScore = new Float32Array(n);
      this.hLeft = new Int32Array(n);
      this.hStamp = new Int32Array(n);
      this.hMerged = new Int32Array(n);
    }
  }
}

/**
 * A llama2.c tokenizer. Build it with {@linkcode Llama2cTokenizer.fromBytes}; it holds no Deno
 * API, so it works in a browser.
 *
 * @example
 * ```ts
 * import { Llama2cTokenizer, loadEmbeddedFiles } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tok = Llama2cTokenizer.fromBytes((await loadEmbeddedFiles()).tokenizer);
 * assert.deepEqual(tok.encode("Once upon a time", { bos: true }), [1, 9038, 2501, 263, 931]);
 * ```
 */
export class Llama2cTokenizer implements Tokenizer {
  readonly kind = "llama2c";
  readonly bosId: number = BOS_ID;
  readonly eosId: number = EOS_ID;
  readonly vocabSize: number;
  /** The file's max_token_length field. */
  readonly maxTokenLength: number;

  readonly #source: Uint8Array;
  readonly #pieces: Uint8Array[];
  readonly #scores: Float32Array;
  /** Piece string -> id, over ids >= 259 whose bytes are valid UTF-8 (the first id wins a tie). */
  readonly #lookup = new Map<string, number>();
  /** UTF-16 code unit -> id of that one-character piece, or -1 (the common case of `#lookup`). */
  readonly #bmp = new Int32Array(0x10000).fill(-1);
  /** left id * vocabSize + right id -> merged id, only for merges run.c can choose. */
  readonly #pairs = new Map<number, number>();
  /** Whether lines may be cut into words (see the module doc). */
  readonly #wordSplit: boolean;
  readonly #memo = new Map<string, number[]>();
  readonly #scratch = new Scratch();
  #fingerprint?: Promise<string>;

  private constructor(source: Uint8Array, vocab: Llama2cVocab) {
    this.#source = source;
    this.#pieces = vocab.pieces;
    this.#scores = vocab.scores;
    this.vocabSize = vocab.pieces.length;
    this.maxTokenLength = vocab.maxTokenLength;

    // A piece that is not valid UTF-8 can never equal text (which is), nor a concatenation of
    // pieces that can (those are valid too), so leaving it out of the lookup changes nothing.
    const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    for (let id = FIRST_PIECE; id < this.vocabSize; id++) {
      let s: string;
      try {
        s = utf8.decode(vocab.pieces[id]);
      } catch {
        continue;
      }
      if (s.length === 0 || this.#lookup.has(s)) continue;
      this.#lookup.set(s, id);
      if (s.length === 1) this.#bmp[s.charCodeAt(0)] = id;
    }
    // Every way to split a piece into two pieces is a merge that produces it.
    let wordSplit = true;
    for (const [s, id] of this.#lookup) {
      if (/[^ ] /.test(s)) wordSplit = false;
      if (!(vocab.scores[id] > MIN_SCORE)) continue;
      for (let k = 1; k < s.length; k++) {
        const a = this.#lookup.get(s.slice(0, k));
        const b = this.#lookup.get(s.slice(k));
        if (a !== undefined && b !== undefined) this.#pairs.set(a * this.vocabSize + b, id);
      }
    }
    this.#wordSplit = wordSplit;
  }

  /**
   * Build a tokenizer from the bytes of a `tokenizer.bin` (copied, so the caller may reuse them).
   * @param name shown in error messages (e.g. the file's path)
   * @throws {ModelFormatError} when the bytes are not a valid llama2.c tokenizer
   */
  static fromBytes(bytes: Uint8Array, name?: string): Llama2cTokenizer {
    const source = bytes.slice();
    return new Llama2cTokenizer(source, parseLlama2cTokenizer(source, name));
  }

  /** Token ids of `text` under the protocol's document rules (see the module doc). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(BOS_ID);
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (i > 0) out.push(NEWLINE_ID);
      const line = lines[i];
      if (line.length > 0) this.#encodeLine(i === 0 ? " " + line : line, out);
    }
    return out;
  }

  /** Append the ids of one line (no "\n" inside; dummy prefix already applied). */
  #encodeLine(line: string, out: number[]): void {
    if (!this.#wordSplit) {
      this.#bpe(line, out);
      return;
    }
    let start = 0;
    for (let i = 1; i < line.length; i++) {
      if (line.charCodeAt(i) === 0x20 && line.charCodeAt(i - 1) !== 0x20) {
        this.#encodeWord(line.slice(start, i), out);
        start = i;
      }
    }
    this.#encodeWord(start === 0 ? line : line.slice(start), out);
  }

  #encodeWord(word: string, out: number[]): void {
    let ids = this.#memo.get(word);
    if (ids === undefined) {
      ids = [];
      this.#bpe(word, ids);
      if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
      this.#memo.set(word, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  /** run.c's per-character lookup with byte fallback, then its merge loop (heap version). */
  #bpe(s: string, out: number[]): void {
    const w = this.#scratch;
    w.reserve(3 * s.length); // a UTF-16 code unit is at most 3 UTF-8 bytes (a surrogate pair, 4)
    const tok = w.tok;
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      let cp = c;
      let id: number;
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          id = this.#lookup.get(s.slice(i, i + 2)) ?? -1;
          i++;
        } else {
          // A lone surrogate has no UTF-8 form; TextEncoder writes U+FFFD for it, so do we.
          cp = 0xfffd;
          id = this.#bmp[cp];
        }
      } else {
        id = this.#bmp[c];
      }
      if (id >= 0) {
        tok[n++] = id;
      } else if (cp < 0x80) {
        tok[n++] = cp + BYTE_OFFSET;
      } else if (cp < 0x800) {
        tok[n++] = (0xc0 | (cp >> 6)) + BYTE_OFFSET;
        tok[n++] = (0x80 | (cp & 0x3f)) + BYTE_OFFSET;
      } else if (cp < 0x10000) {
        tok[n++] = (0xe0 | (cp >> 12)) + BYTE_OFFSET;
        tok[n++] = (0x80 | ((cp >> 6) & 0x3f)) + BYTE_OFFSET;
        tok[n++] = (0x80 | (cp & 0x3f)) + BYTE_OFFSET;
      } else {
        tok[n++] = (0xf0 | (cp >> 18)) + BYTE_OFFSET;
        tok[n++] = (0x80 | ((cp >> 12) & 0x3f)) + BYTE_OFFSET;
        tok[n++] = (0x80 | ((cp >> 6) & 0x3f)) + BYTE_OFFSET;
        tok[n++] = (0x80 | (cp & 0x3f)) + BYTE_OFFSET;
      }
    }
    if (n === 1) {
      out.push(tok[0]);
      return;
    }
    this.#merge(n);
    for (let i = 0; i >= 0; i = w.next[i]) out.push(w.tok[i]);
  }

  /** Merge symbols tok[0..n) in place (n >= 2); the survivors stay linked from node 0 by `next`. */
  #merge(n: number): void {
    const { tok, prev, next, stamp, hScore, hLeft, hStamp, hMerged } = this.#scratch;
    const pairs = this.#pairs;
    const scores = this.#scores;
    const v = this.vocabSize;
    let size = 0;

    // Heap order: higher score first, then the leftmost pair.
    const push = (i: number): void => {
      const m = pairs.get(tok[i] * v + tok[next[i]]);
      if (m === undefined) return;
      const score = scores[m];
      let k = size++;
      while (k > 0) {
        const p = (k - 1) >> 1;
        if (hScore[p] > score || (hScore[p] === score && hLeft[p] < i)) break;
        hScore[k] = hScore[p];
        hLeft[k] = hLeft[p];
        hStamp[k] = hStamp[p];
        hMerged[k] = hMerged[p];
        k = p;
      }
      hScore[k] = score;
      hLeft[k] = i;
      hStamp[k] = stamp[i];
      hMerged[k] = m;
    };
    // Remove the top slot (read by the caller first) and restore the heap.
    const pop = (): void => {
      const last = --size;
      const score = hScore[last], left = hLeft[last];
      let k = 0;
      for (;;) {
        let c = 2 * k + 1;
        if (c >= size) break;
        if (
          c + 1 < size &&
          (hScore[c + 1] > hScore[c] || (hScore[c + 1] === hScore[c] && hLeft[c + 1] < hLeft[c]))
        ) {
          c++;
        }
        if (score > hScore[c] || (score === hScore[c] && left < hLeft[c])) break;
        hScore[k] = hScore[c];
        hLeft[k] = hLeft[c];
        hStamp[k] = hStamp[c];
        hMerged[k] = hMerged[c];
        k = c;
      }
      hScore[k] = score;
      hLeft[k] = left;
      hStamp[k] = hStamp[last];
      hMerged[k] = hMerged[last];
    };

    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
      stamp[i] = 0;
    }
    for (let i = 0; i + 1 < n; i++) push(i);
    while (size > 0) {
      const i = hLeft[0], s = hStamp[0], m = hMerged[0];
      pop();
      if (stamp[i] !== s) continue; // stale: the pair changed since this entry was made
      const j = next[i], k = next[j], h = prev[i];
      tok[i] = m;
      next[i] = k;
      if (k >= 0) prev[k] = i;
      stamp[i]++;
      stamp[j]++; // j is gone: its pair with k is void
      if (h >= 0) {
        stamp[h]++; // its right neighbour's id changed
        push(h);
      }
      if (k >= 0) push(i);
    }
  }

  /**
   * Raw bytes of `id` following `prevId`, as run.c's `decode`: a byte token gives its byte, a
   * piece right after BOS loses a leading space, and the controls (ids 0..2) give nothing.
   * @throws {ArgumentError} for an id outside the vocabulary
   */
  pieceBytes(prevId: number, id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new ArgumentError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    if (id < BYTE_OFFSET) return new Uint8Array(0);
    if (id < FIRST_PIECE) return Uint8Array.of(id - BYTE_OFFSET);
    const piece = this.#pieces[id];
    return prevId === BOS_ID && piece[0] === 0x20 ? piece.subarray(1) : piece;
  }

  /** Text of a whole sequence (see {@linkcode Tokenizer.decode}). */
  decode(ids: readonly number[]): string {
    const parts = ids.map((id, i) => this.pieceBytes(i > 0 ? ids[i - 1] : -1, id));
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new TextDecoder().decode(all);
  }

  /** One piece as text; a lone byte of a multi-byte character gives U+FFFD (stream with `decodeStream`). */
  decodePiece(prevId: number, id: number): string {
    return new TextDecoder().decode(this.pieceBytes(prevId, id));
  }

  /** A streaming decoder: bytes go through a TextDecoder in stream mode. */
  decodeStream(): TokenStream {
    const decoder = new TextDecoder();
    let prev = -1;
    return {
      push: (id: number) => {
        const text = decoder.decode(this.pieceBytes(prev, id), { stream: true });
        prev = id;
        return text;
      },
      flush: () => decoder.decode(),
    };
  }

  /** sha256 of the algorithm version and the tokenizer.bin bytes. */
  fingerprint(): Promise<string> {
    this.#fingerprint ??= sha256Hex(new TextEncoder().encode(ALGORITHM + "\0"), this.#source);
    return this.#fingerprint;
  }
}
