/**
 * Temporary outputs (src/util/files.ts): every writer registers its temporary name while it writes and
 * forgets it when done, so the CLIs' Ctrl-C handler (src/cli/run.ts) removes exactly the unfinished ones.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeSafetensors } from "../src/model/safetensors.ts";
import {
  removeTemporariesSync,
  trackTemporary,
  writeDirectoryAtomic,
  writeTextAtomic,
} from "../src/util/files.ts";

Deno.test("temporaries: tracked paths are removed (files and directories), untracked ones are not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [a, b, c] = ["a.tmp", "b.tmp", "c.tmp"].map((n) => join(dir, n));
    await Deno.writeTextFile(a, "x");
    await Deno.mkdir(b);
    await Deno.writeTextFile(join(b, "inside"), "y");
    await Deno.writeTextFile(c, "z");
    trackTemporary(a);
    trackTemporary(b);
    const untrack = trackTemporary(c);
    untrack();
    assert.deepEqual(removeTemporariesSync().sort(), [a, b]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["c.tmp"]);
    assert.deepEqual(removeTemporariesSync(), [], "the list is cleared");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("temporaries: the writers track their temporary while writing and forget it once done", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "model");
    let during: string[] = [];
    // An interrupt mid-write removes the temporary directory; the write then fails, and nothing is left.
    await assert.rejects(() =>
      writeDirectoryAtomic(out, async (tmp) => {
        await Deno.writeTextFile(join(tmp, "config.json"), "{}");
        during = removeTemporariesSync();
        await Deno.writeTextFile(join(tmp, "model.safetensors"), "");
      })
    );
    assert.equal(during.length, 1);
    assert.match(during[0], /model\.tmp-/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);

    // Finished writes leave nothing tracked.
    await writeDirectoryAtomic(out, (tmp) => Deno.writeTextFile(join(tmp, "config.json"), "{}"));
    await writeTextAtomic(join(dir, "r.json"), "{}");
    await writeSafetensors(join(dir, "w.safetensors"), [
      { name: "w", dtype: "f32", shape: [2], data: new Uint8Array(8) },
    ]);
    assert.deepEqual(removeTemporariesSync(), []);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "model",
      "r.json",
      "w.safetensors",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
