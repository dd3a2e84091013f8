/**
 * Pruned weights on disk (Deno): what `deno task prune` prunes into, so that host memory holds one
 * linear at a time instead of the whole model's (LLaMA-7B: 26 GB of f32 block linears).
 * @module
 */
import { ArgumentError, ModelFormatError, OutputError, OwlError } from "../errors.ts";
import { cannotWrite, FileSink, trackTemporary } from "../util/files.ts";
import { decodeZeroSkipping, encodeZeroSkipping, missingWeight, type PrunedWeightStore } from "./store.ts";

function cannotOpen(path: string, e: unknown): OutputError {
  return new OutputError(`cannot open ${path} for the pruned weights: ${(e as Error).message}`, { cause: e });
}

function closed(): ArgumentError {
  return new ArgumentError("FileWeightStore: the store is closed");
}

/** Where one weight's record lies in the file. */
interface Record {
  offset: number;
  bytes: number;
  length: number;
}

/**
 * What a kept store ({@linkcode FileWeightStore.openKept}) holds, as JSON: its file's length and each
 * record's [name, offset, bytes, weights]. A snapshot taken after `flush()` reopens the store as it was
 * then, whatever was appended after it.
 */
export interface StoreSnapshot {
  fileBytes: number;
  records: [name: string, offset: number, bytes: number, length: number][];
}

/**
 * A {@linkcode PrunedWeightStore} in a temporary file: each weight is appended zero-skipped
 * (`encodeZeroSkipping`: a bitmap, then the nonzero f32 words; exact to the bit) and read back on
 * demand. `close()` deletes the file. Reads and writes are queued, so concurrent calls are safe.
 *
 * @example Store two weights on disk and read them back; the file is gone after close()
 * ```ts
 * import { FileWeightStore } from "@owlgpu/owlgpu"; // Deno only (file APIs)
 * import assert from "node:assert/strict";
 *
 * const store = await FileWeightStore.create(); // in the system's temporary directory
 * const a = Float32Array.from({ length: 1000 }, (_, i) => (i % 4 ? 0 : i + 1));
 * await store.put("a", a);
 * await store.put("b", new Float32Array([1, 2, 3]));
 * assert.deepEqual(await store.read("a"), a);
 * assert.equal(store.fileBytes, 4 * (32 + 250) + 4 * (1 + 3)); // bitmap + kept words, per weight
 * const path = store.path;
 * store.close();
 * assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
 * ```
 */
export class FileWeightStore implements PrunedWeightStore {
  readonly #index = new Map<string, Record>();
  #file: Deno.FsFile | undefined;
  #end = 0;
  #queue: Promise<unknown> = Promise.resolve();

  readonly #untrack: () => void;

  /** Whether `close()` keeps the file ({@linkcode FileWeightStore.openKept}) instead of deleting it. */
  readonly kept: boolean;

  private constructor(readonly path: string, file: Deno.FsFile, kept = false) {
    this.#file = file;
    this.kept = kept;
    // A CLI interrupted by Ctrl-C removes a temporary store's file; a kept one is what resumes the job.
    this.#untrack = kept ? () => {} : trackTemporary(path);
  }

  /**
   * A store in the file `path` that outlives the process: `close()` keeps it, so that an interrupted
   * job can reopen it. Without `snapshot` the file is created or emptied; with one, it is reopened as
   * the snapshot says, and anything written after the snapshot is cut off (ModelFormatError when the
   * file is shorter than the snapshot or its records do not decode).
   */
  static async openKept(path: string, snapshot?: StoreSnapshot): Promise<FileWeightStore> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true, create: !snapshot });
    } catch (e) {
      throw cannotOpen(path, e);
    }
    const store = new FileWeightStore(path, file, true);
    try {
      if (!snapshot) {
        await file.truncate(0);
        return store;
      }
      const size = (await file.stat()).size;
      const bad = (why: string) => new ModelFormatError(`${path} does not match its checkpoint: ${why}`);
      if (!Number.isInteger(snapshot.fileBytes) || !Array.isArray(snapshot.records)) {
        throw bad("the snapshot is malformed");
      }
      if (size < snapshot.fileBytes) throw bad(`it has ${size} bytes, the checkpoint ${snapshot.fileBytes}`);
      await file.truncate(snapshot.fileBytes); // a record begun after the snapshot
      let end = 0;
      for (const r of snapshot.records) {
        const [name, offset, bytes, length] = (Array.isArray(r) ? r : []) as unknown[];
        const ok = typeof name === "string" && offset === end && typeof bytes === "number" &&
          Number.isInteger(bytes) && bytes > 0 && typeof length === "number" && Number.isInteger(length) &&
          length >= 0 && !store.#index.has(name);
        if (!ok) throw bad(`record ${JSON.stringify(r)} is malformed`);
        store.#index.set(name, { offset, bytes, length });
        end += bytes;
      }
      if (end !== snapshot.fileBytes) throw bad(`its records end at ${end}, not ${snapshot.fileBytes}`);
      store.#end = end;
      return store;
    } catch (e) {
      store.close();
      if (e instanceof OwlError) throw e;
      throw new OutputError(`cannot reopen ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Where each record lies, to reopen a kept store with (after `flush()`, to be durable). */
  snapshot(): StoreSnapshot {
    this.#open();
    return {
      fileBytes: this.#end,
      records: [...this.#index].map(([name, r]) => [name, r.offset, r.bytes, r.length]),
    };
  }

  /** Wait for every queued write, then have the system put the file's data on disk. */
  flush(): Promise<void> {
    if (!this.#file) return Promise.reject(closed());
    return this.#serial(async (file) => {
      try {
        await file.syncData();
      } catch (e) {
        if (!this.#file) throw closed();
        throw cannotWrite(this.path, e);
      }
    });
  }

  /**
   * A new, empty store in a temporary file in `dir` (default: the system's temporary directory).
   * Put it on a disk with room for the pruned linears, about (1 - sparsity + 1/32) of their f32 bytes.
   */
  static async create(dir?: string): Promise<FileWeightStore> {
    let path: string;
    try {
      path = await Deno.makeTempFile({ dir, prefix: ".owlgpu-pruned-", suffix: ".tmp" });
    } catch (e) {
      throw new OutputError(
        `cannot create a temporary file for the pruned weights in ${dir ?? "the temporary directory"}: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    try {
      return new FileWeightStore(path, await Deno.open(path, { read: true, write: true }));
    } catch (e) {
      await Deno.remove(path).catch(() => {});
      throw cannotOpen(path, e);
    }
  }

  /** Bytes written to the file so far. */
  get fileBytes(): number {
    return this.#end;
  }

  names(): string[] {
    this.#open();
    return [...this.#index.keys()];
  }

  has(name: string): boolean {
    this.#open();
    return this.#index.has(name);
  }

  put(name: string, w: Float32Array): Promise<void> {
    if (!this.#file) return Promise.reject(closed());
    if (this.#index.has(name)) {
      return Promise.reject(new ArgumentError(`FileWeightStore: ${name} is already stored`));
    }
    const bytes = encodeZeroSkipping(w);
    const record = { offset: this.#end, bytes: bytes.length, length: w.length };
    this.#index.set(name, record);
    this.#end += bytes.length;
    return this.#serial(async (file) => {
      try {
        await file.seek(record.offset, Deno.SeekMode.Start);
        await new FileSink(file, this.path).write(bytes);
      } catch (e) {
        if (!this.#file) throw closed(); // closed while this write was under way
        throw e instanceof OwlError ? e : cannotWrite(this.path, e);
      }
    });
  }

  read(name: string): Promise<Float32Array> {
    if (!this.#file) return Promise.reject(closed());
    const record = this.#index.get(name);
    if (!record) return Promise.reject(missingWeight(name, "FileWeightStore"));
    return this.#serial(async (file) => {
      const bytes = new Uint8Array(record.bytes);
      try {
        await file.seek(record.offset, Deno.SeekMode.Start);
        for (let done = 0; done < bytes.length;) {
          const n = await file.read(bytes.subarray(done));
          if (n === null) throw new ModelFormatError(`${this.path} ended inside the record of ${name}`);
          done += n;
        }
      } catch (e) {
        if (!this.#file) throw closed(); // closed while this read was under way
        if (e instanceof OwlError) throw e;
        throw new OutputError(`cannot read the pruned weights from ${this.path}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      return decodeZeroSkipping(bytes, record.length);
    });
  }

  /** Close the file and delete it, unless the store is kept (idempotent). */
  close(): void {
    if (!this.#file) return;
    this.#file.close();
    this.#file = undefined;
    this.#untrack();
    if (this.kept) return;
    try {
      Deno.removeSync(this.path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  /** The open file; ArgumentError once closed. */
  #open(): Deno.FsFile {
    if (!this.#file) throw closed();
    return this.#file;
  }

  /**
   * Run `op` on the file after every earlier operation (one file position, one operation at a time);
   * an operation still queued when the store is closed rejects with the "closed" error.
   */
  #serial<T>(op: (file: Deno.FsFile) => Promise<T>): Promise<T> {
    const run = () => op(this.#open());
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }
}
