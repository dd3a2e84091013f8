/**
 * Tokenizers: the llama2.c heap BPE against the run.c reference loop (random and real text, a
 * synthetic vocabulary for ties and for the whole-line path), the protocol's known encodings,
 * decoding and streaming, tokenizer.bin validation, the Hugging Face wrapper and openTokenizer.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCorpusText } from "../src/data/corpora.ts";
import { HfTokenizer } from "../src/data/hf_tokenizer.ts";
import { Llama2cTokenizer } from "../src/data/llama2c_tokenizer.ts";
import { openTokenizer } from "../src/data/open_tokenizer.ts";
import type { Tokenizer } from "../src/data/tokenizer.ts";
import { ModelFormatError, UnsupportedError } from "../src/errors.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";
import { RefLlama2cTokenizer } from "./ref/llama2c_bpe_ref.ts";

const BIN = (await loadEmbeddedFiles()).tokenizer;
const tok = Llama2cTokenizer.fromBytes(BIN);
const ref = new RefLlama2cTokenizer(BIN);

/** mulberry32: a small seeded PRNG in [0, 1). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Building blocks of random text: words, spaces, punctuation, unicode in and out of the vocabulary. */
const ALPHABET = [
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-",
  " ",
  " ",
  " ",
  "  ",
  "      ",
  " the",
  "the",
  " and",
  "ing",
  "tion",
  " Once upon a time",
  "—",
  "é",
  "ü",
  "ß",
  "中",
  "文",
  "日本語",
  "😀",
  "🦉",
  "龘",
  "\uE000",
  "\u00A0",
  "\x02",
  "\x00",
  "\t",
  "\r",
  "\n",
  "\n\n",
  "\uD800",
  "\uDC00x",
];

function randomText(next: () => number, maxParts: number): string {
  const n = Math.floor(next() * (maxParts + 1));
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return s;
}

/** Random substrings of a text, cut at UTF-16 positions (so a surrogate pair may be split too). */
function chunks(text: string, count: number, maxLen: number, seed: number): string[] {
  const next = rng(seed);
  return Array.from({ length: count }, () => {
    const start = Math.floor(next() * text.length);
    return text.slice(start, start + 1 + Math.floor(next() * maxLen));
  });
}

/** A llama2.c tokenizer.bin: the 259 control and byte tokens (as stories15M stores them), then `pieces`. */
function buildBin(pieces: [string, number][], controlCount = 259): Uint8Array {
  const enc = new TextEncoder();
  const records: [number, Uint8Array][] = [];
  for (let id = 0; id < controlCount; id++) {
    const text = id === 0
      ? "<unk>"
      : id === 1
      ? "\n<s>\n"
      : id === 2
      ? "\n</s>\n"
      : String.fromCharCode(id - 3);
    records.push([0, enc.encode(text)]);
  }
  for (const [text, score] of pieces) records.push([score, enc.encode(text)]);
  const out = new Uint8Array(4 + records.reduce((n, [, b]) => n + 8 + b.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, 16, true);
  let off = 4;
  for (const [score, bytes] of records) {
    view.setFloat32(off, score, true);
    view.setInt32(off + 4, bytes.length, true);
    out.set(bytes, off + 8);
    off += 8 + bytes.length;
  }
  return out;
}

/** stories15M's tokenizer.bin with `pieces` appended. */
function extendBin(pieces: [string, number][]): Uint8Array {
  const extra = buildBin(pieces, 0).subarray(4);
  const out = new Uint8Array(BIN.length + extra.length);
  out.set(BIN);
  out.set(extra, BIN.length);
  return out;
}

function assertSameAsRef(fast: Tokenizer, slow: RefLlama2cTokenizer, texts: string[]): void {
  let i = 0;
  for (const text of texts) {
    const bos = i++ % 2 === 0;
    assert.deepEqual(fast.encode(text, { bos }), slow.encode(text, bos), `text ${JSON.stringify(text)}`);
  }
}

Deno.test("llama2.c tokenizer: the protocol's known encodings", () => {
  assert.equal(tok.vocabSize, 32000);
  assert.deepEqual([tok.bosId, tok.eosId], [1, 2]);
  assert.deepEqual(tok.encode("Hello world!"), [15043, 3186, 29991]);
  assert.deepEqual(tok.encode("Once upon a time", { bos: true }), [1, 9038, 2501, 263, 931]);
  // '\x02' has no piece: byte fallback, id 2 + 3, never merged with its neighbours.
  assert.deepEqual(tok.encode("a\x02b"), [263, 5, 29890]);
  assert.deepEqual(tok.encode(""), []);
  assert.deepEqual(tok.encode("", { bos: true }), [1]);
});

Deno.test("llama2.c tokenizer: document rules (dummy prefix on line 1 only, newline id 13)", () => {
  const hello = tok.encode("Hello");
  const world = ref.encodeLine("world", false);
  assert.deepEqual(tok.encode("Hello\nworld"), [...hello, 13, ...world]);
  assert.deepEqual(tok.encode("Hello\n\nworld\n"), [...hello, 13, 13, ...world, 13]);
  // An empty first line gets no dummy prefix, like run.c on an empty string.
  assert.deepEqual(tok.encode("\nworld"), [13, ...world]);
  // Characters missing from the vocabulary become their UTF-8 bytes, id = byte + 3.
  assert.deepEqual(tok.encode("龘").slice(1), [0xe9 + 3, 0xbe + 3, 0x98 + 3]);
});

Deno.test("llama2.c tokenizer: heap BPE equals the run.c loop on random text", () => {
  const next = rng(1234);
  const texts = Array.from({ length: 1500 }, () => randomText(next, 40));
  texts.push("", " ", "\n", "\n\n", "   ", "a\n", " \n ", "          x", "\r\n\r\n", "\uD800", "😀😀");
  assertSameAsRef(tok, ref, texts);
});

Deno.test("llama2.c tokenizer: heap BPE equals the run.c loop on real text", async () => {
  const [sotu, moby] = await Promise.all([loadCorpusText("sotu"), loadCorpusText("moby-dick")]);
  const texts = [...chunks(sotu, 150, 300, 7), ...chunks(moby, 150, 300, 8)];
  texts.push(sotu.slice(1_000_000, 1_001_500), moby.slice(0, 1500));
  assertSameAsRef(tok, ref, texts);
});

Deno.test("llama2.c tokenizer: ties go to the leftmost pair, scores <= -1e10 never merge", () => {
  const bin = buildBin([["a", 0], ["b", 0], ["ab", -1], ["ba", -1], ["x", 0], ["y", 0], ["xy", -2e10]]);
  const small = Llama2cTokenizer.fromBytes(bin);
  const smallRef = new RefLlama2cTokenizer(bin);
  const [a, b, ab, ba, x, y] = [259, 260, 261, 262, 263, 264];
  const space = 0x20 + 3; // " " is no piece here: byte fallback, which never merges
  assert.deepEqual(small.encode("aba"), [space, ab, a]);
  assert.deepEqual(small.encode("bab"), [space, ba, b]);
  assert.deepEqual(small.encode("xy"), [space, x, y]);
  const next = rng(99);
  const texts = Array.from({ length: 300 }, () => {
    let s = "";
    for (let n = Math.floor(next() * 30); n > 0; n--) s += "abxy \n"[Math.floor(next() * 6)];
    return s;
  });
  assertSameAsRef(small, smallRef, texts);
});

Deno.test("llama2.c tokenizer: whole-line path (a piece with an inner space) equals the run.c loop", async () => {
  const bin = extendBin([["e t", -5]]);
  const wide = Llama2cTokenizer.fromBytes(bin);
  const wideRef = new RefLlama2cTokenizer(bin);
  assert.ok(wide.encode("the tree").includes(32000), "the new piece merges across the space");
  const next = rng(4321);
  const texts = Array.from({ length: 400 }, () => randomText(next, 40));
  texts.push(...chunks(await loadCorpusText("moby-dick"), 100, 400, 5));
  assertSameAsRef(wide, wideRef, texts);
});

Deno.test("llama2.c tokenizer: decode, decodePiece and streaming", () => {
  assert.equal(tok.decodePiece(1, 9038), "Once"); // the leading space goes after BOS
  assert.equal(tok.decodePiece(9038, 2501), " upon");
  assert.equal(tok.decodePiece(263, 5), "\x02");
  assert.equal(tok.decodePiece(-1, 1), "");
  assert.equal(tok.decode([1, 9038, 2501, 263, 931, 2]), "Once upon a time");
  assert.throws(() => tok.decodePiece(1, 32000), /outside the vocabulary/);

  const next = rng(77);
  for (let k = 0; k < 500; k++) {
    const text = randomText(next, 30).toWellFormed();
    const ids = tok.encode(text, { bos: true });
    assert.equal(tok.decode(ids), text);
    const stream = tok.decodeStream();
    const parts = ids.map((id) => stream.push(id));
    parts.push(stream.flush());
    assert.equal(parts.join(""), text);
    // A character split over byte tokens comes out whole, never as U+FFFD halves.
    if (!text.includes("\uFFFD")) assert.ok(parts.every((p) => !p.includes("\uFFFD")), JSON.stringify(parts));
  }
  const stream = tok.decodeStream();
  assert.deepEqual(tok.encode("龘", { bos: true }).map((id) => stream.push(id)), ["", "", "", "", "龘"]);
});

Deno.test("llama2.c tokenizer: invalid tokenizer.bin files", () => {
  assert.throws(() => Llama2cTokenizer.fromBytes(new Uint8Array(2)), ModelFormatError);
  assert.throws(() => Llama2cTokenizer.fromBytes(BIN.subarray(0, 1000), "t.bin"), (e: Error) => {
    assert.ok(e instanceof ModelFormatError);
    assert.match(e.message, /^t\.bin: .*truncated/);
    return true;
  });
  assert.throws(() => Llama2cTokenizer.fromBytes(BIN.subarray(0, BIN.length - 3)), /truncated/);
  assert.throws(() => Llama2cTokenizer.fromBytes(buildBin([], 10)), /10 tokens; .* at least 259/);
});

/** A small LLaMA-2-style tokenizer.json: Metaspace by normalizer, BPE with byte fallback. */
function hfJson(postProcessor = true): Uint8Array {
  const merges = [
    ["▁", "H"],
    ["▁H", "e"],
    ["l", "l"],
    ["▁He", "ll"],
    ["▁Hell", "o"],
    ["▁", "w"],
    ["o", "r"],
    [
      "▁w",
      "or",
    ],
    ["▁wor", "l"],
    ["▁worl", "d"],
  ];
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (const piece of ["▁", ..."Helowrd!", ...merges.map(([l, r]) => l + r)]) {
    vocab[piece] ??= Object.keys(vocab).length;
  }
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return new TextEncoder().encode(JSON.stringify({
    version: "1.0",
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "▁" }, {
        type: "Replace",
        pattern: { String: " " },
        content: "▁",
      }],
    },
    pre_tokenizer: null,
    post_processor: postProcessor
      ? {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [],
        special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
      }
      : null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map(([l, r]) => `${l} ${r}`),
    },
  }));
}

Deno.test("Hugging Face tokenizer: encode, BOS, decode and streaming", () => {
  const hf = HfTokenizer.fromBytes(hfJson());
  assert.equal(hf.kind, "huggingface");
  assert.deepEqual([hf.bosId, hf.eosId], [1, 2]);
  const ids = hf.encode("Hello world!");
  assert.equal(ids.length, 3);
  assert.deepEqual(hf.encode("Hello world!", { bos: true }), [1, ...ids]);
  assert.equal(hf.vocabSize, Math.max(...ids) + 1); // "▁world" is the last piece added
  assert.equal(hf.decode([1, ...ids, 2]), "Hello world!");
  assert.equal(hf.decode([]), "");
  assert.equal(hf.decodePiece(1, ids[0]), "Hello");
  assert.equal(hf.decodePiece(ids[0], ids[1]), " world");

  // é is no piece: byte fallback; streaming holds the first byte back.
  const e = hf.encode("Hé", { bos: true });
  assert.deepEqual(e.slice(-2), [0xc3 + 3, 0xa9 + 3]);
  const stream = hf.decodeStream();
  assert.deepEqual(e.map((id) => stream.push(id)), ["", "H", "", "é"]);
  assert.equal(stream.flush(), "");
});

Deno.test("Hugging Face tokenizer: add_bos_token from tokenizer_config.json, invalid files", async () => {
  const config = new TextEncoder().encode(
    JSON.stringify({ add_bos_token: true, bos_token: "<s>", eos_token: "</s>" }),
  );
  const hf = HfTokenizer.fromBytes(hfJson(false), config);
  assert.equal(hf.encode("Hello", { bos: true })[0], 1);
  assert.notEqual(hf.encode("Hello")[0], 1);
  assert.notEqual(await hf.fingerprint(), await HfTokenizer.fromBytes(hfJson(false)).fingerprint());
  assert.throws(() => HfTokenizer.fromBytes(new TextEncoder().encode("{oops")), ModelFormatError);
  assert.throws(() => HfTokenizer.fromBytes(new TextEncoder().encode("{}")), ModelFormatError);
});

/** A tiny WordLevel tokenizer.json split on whitespace; `unk` is model.unk_token (omitted when undefined). */
function wordLevelJson(unk: string | undefined, vocab: Record<string, number>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    added_tokens: [{ id: 0, content: "<s>", special: true }],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: null,
    model: { type: "WordLevel", vocab, ...(unk === undefined ? {} : { unk_token: unk }) },
  }));
}

Deno.test("Hugging Face tokenizer: a WordLevel word outside the vocabulary", () => {
  // @huggingface/tokenizers 0.2.0 gives such a word the id `undefined`; the wrapper maps it to the unk id.
  const vocab = { "<s>": 0, "<unk>": 1, once: 2, upon: 3, a: 4, time: 5 };
  const hf = HfTokenizer.fromBytes(wordLevelJson("<unk>", vocab));
  const ids = hf.encode("once upon a dragon time");
  assert.deepEqual(ids, [2, 3, 4, 1, 5]);
  assert.ok(ids.every(Number.isInteger));
  assert.deepEqual(hf.encode("dragons everywhere"), [1, 1]);

  // No unk token (none named, or one named that is not in the vocabulary): a clear error naming the word.
  const { "<unk>": _, ...noUnk } = vocab;
  for (const json of [wordLevelJson(undefined, vocab), wordLevelJson("<unk>", noUnk)]) {
    const strict = HfTokenizer.fromBytes(json, undefined, "words/tokenizer.json");
    assert.deepEqual(strict.encode("once upon a time"), [2, 3, 4, 5]);
    assert.throws(
      () => strict.encode("once upon a dragon"),
      (e: Error) =>
        e instanceof UnsupportedError && e.message.startsWith('words/tokenizer.json: the piece "dragon"') &&
        e.message.includes("model.unk_token"),
    );
  }
});

Deno.test("openTokenizer: embedded, directories, checkpoint paths and missing tokenizers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const embedded = await openTokenizer("stories15M");
    assert.equal(embedded.kind, "llama2c");
    assert.equal(await embedded.fingerprint(), await tok.fingerprint());

    const bins = join(dir, "bin");
    await Deno.mkdir(bins);
    await Deno.writeFile(join(bins, "tokenizer.bin"), BIN);
    await Deno.writeFile(join(bins, "model.bin"), new Uint8Array(4));
    for (const spec of [bins, join(bins, "model.bin"), join(bins, "tokenizer.bin")]) {
      assert.deepEqual((await openTokenizer(spec)).encode("Hello world!"), [15043, 3186, 29991], spec);
    }

    const hfDir = join(dir, "hf");
    await Deno.mkdir(hfDir);
    await Deno.writeFile(join(hfDir, "tokenizer.json"), hfJson());
    await Deno.writeFile(join(hfDir, "tokenizer.bin"), BIN); // tokenizer.json wins
    assert.equal((await openTokenizer(hfDir)).kind, "huggingface");

    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    await Deno.writeFile(join(empty, "model.bin"), new Uint8Array(4));
    await assert.rejects(openTokenizer(empty), (e: Error) => {
      assert.ok(e instanceof ModelFormatError);
      assert.ok(
        e.message.includes(join(empty, "tokenizer.json")) && e.message.includes(join(empty, "tokenizer.bin")),
      );
      return true;
    });
    await assert.rejects(openTokenizer(join(empty, "model.bin")), /tried .*empty\/tokenizer\.bin/);
    await assert.rejects(openTokenizer(join(dir, "nothing")), ModelFormatError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
