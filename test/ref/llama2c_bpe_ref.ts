/**
 * Reference llama2.c tokenizer for tests: a plain transcription of run.c's `encode` (bytes in,
 * characters looked up, byte fallback, then the O(n^2)-per-merge rescan loop) plus the protocol's
 * document rules. Slow on purpose and independent of src/data/llama2c_tokenizer.ts (its own
 * parser too), so the fast heap version can be checked against it.
 * @module
 */

/** Byte token names of the original llama2.c tokenizer: they never equal text and never merge. */
function controlName(id: number): string {
  if (id === 0) return "<unk>";
  if (id === 1) return "<s>";
  if (id === 2) return "</s>";
  return `<0x${(id - 3).toString(16).toUpperCase().padStart(2, "0")}>`;
}

/** run.c's tokenizer: `vocab`, `vocab_scores` and the sorted-vocab lookup (ids >= 259 only). */
export class RefLlama2cTokenizer {
  readonly vocab: string[] = [];
  readonly scores: number[] = [];
  readonly lookup = new Map<string, number>();

  constructor(bytes: Uint8Array) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const decoder = new TextDecoder();
    let off = 4;
    while (off < bytes.byteLength) {
      const id = this.vocab.length;
      this.scores.push(view.getFloat32(off, true));
      const len = view.getInt32(off + 4, true);
      const piece = decoder.decode(bytes.subarray(off + 8, off + 8 + len));
      off += 8 + len;
      // The protocol: ids 0..258 take part in no string lookup.
      this.vocab.push(id < 259 ? controlName(id) : piece);
      if (id >= 259 && !this.lookup.has(piece)) this.lookup.set(piece, id);
    }
  }

  /**
   * run.c `encode(t, text, bos=0, eos=0)` with the dummy prefix switchable. The prefix is
   * prepended to the text as the protocol says (run.c pushes the id of " ", the same thing when
   * " " is a piece, and -1 when it is not).
   */
  encodeLine(text: string, dummyPrefix: boolean): number[] {
    const bytes = new TextEncoder().encode(
      (dummyPrefix && text.length > 0 ? " " + text : text).toWellFormed(),
    );
    const tokens: number[] = [];
    let buf: number[] = [];
    for (let c = 0; c < bytes.length; c++) {
      if ((bytes[c] & 0xc0) !== 0x80) buf = [];
      buf.push(bytes[c]);
      if (c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80 && buf.length < 4) continue;
      const id = this.lookup.get(new TextDecoder().decode(Uint8Array.from(buf)));
      if (id !== undefined) tokens.push(id);
      else for (const b of buf) tokens.push(b + 3);
      buf = [];
    }
    for (;;) {
      let bestScore = Math.fround(-1e10);
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = this.lookup.get(this.vocab[tokens[i]] + this.vocab[tokens[i + 1]]);
        if (id !== undefined && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    return tokens;
  }

  /** The protocol's document rules around `encodeLine`. */
  encode(text: string, bos: boolean): number[] {
    const out = bos ? [1] : [];
    text.split("\n").forEach((line, i) => {
      if (i > 0) out.push(13);
      out.push(...this.encodeLine(line, i === 0));
    });
    return out;
  }
}
