/**
 * ByteSource implementations: an in-memory buffer (browsers, tests) and a Deno file read with
 * positioned reads (so a 14 GB checkpoint is never slurped).
 * @module
 */
import { ModelFormatError } from "../errors.ts";
import type { ByteSource } from "./weights.ts";

function checkRange(src: ByteSource, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new ModelFormatError(
      `${src.name}: read of ${length} bytes at offset ${offset} goes past the end of the file ` +
        `(${src.size} bytes); the file is truncated or its header is corrupt`,
    );
  }
}

/**
 * A ByteSource over bytes already in memory (a subarray view, no copy).
 *
 * @example Positioned reads, and a read past the end
 * ```ts
 * import { MemoryByteSource, ModelFormatError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const src = new MemoryByteSource(new Uint8Array([10, 11, 12, 13, 14]), "five.bin");
 * assert.equal(src.size, 5);
 * assert.deepEqual(await src.read(1, 3), new Uint8Array([11, 12, 13]));
 * await assert.rejects(
 *   src.read(3, 4),
 *   (e) => e instanceof ModelFormatError && e.message.startsWith("five.bin: read of 4 bytes at offset 3"),
 * );
 * src.close();
 * ```
 */
export class MemoryByteSource implements ByteSource {
  readonly size: number;
  /** Wrap `bytes` (not copied); `name` labels error messages. */
  constructor(private readonly bytes: Uint8Array, readonly name = "<memory>") {
    this.size = bytes.byteLength;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    try {
      checkRange(this, offset, length);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve(this.bytes.subarray(offset, offset + length));
  }
  /** Nothing to release. */
  close(): void {}
}

/**
 * A ByteSource over a file on disk, read with positioned reads. Deno only.
 *
 * @example Read 2 bytes at offset 4 of a file; a missing file is a ModelFormatError
 * ```ts
 * import { FileByteSource, ModelFormatError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([1, 2, 3, 4, 5, 6]));
 * const src = await FileByteSource.open(path);
 * assert.deepEqual([src.size, src.name], [6, path]);
 * assert.deepEqual(await src.read(4, 2), new Uint8Array([5, 6]));
 * src.close();
 * await Deno.remove(path);
 * await assert.rejects(FileByteSource.open(path), ModelFormatError);
 * ```
 */
export class FileByteSource implements ByteSource {
  private constructor(private readonly file: Deno.FsFile, readonly size: number, readonly name: string) {}

  /**
   * Open the file at `path` for reading; {@linkcode ModelFormatError} when it does not exist, cannot be
   * opened, or is not a regular file (a directory).
   */
  static async open(path: string): Promise<FileByteSource> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new ModelFormatError(`${path}: file not found`);
      throw new ModelFormatError(`${path}: cannot open (${(e as Error).message})`, { cause: e });
    }
    const stat = await file.stat();
    if (!stat.isFile) {
      file.close();
      throw new ModelFormatError(`${path}: is a directory or a special file, not a regular file`);
    }
    return new FileByteSource(file, stat.size, path);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    await this.file.seek(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < length) {
      const n = await this.file.read(out.subarray(done));
      if (n === null) throw new ModelFormatError(`${this.name}: unexpected end of file at ${offset + done}`);
      done += n;
    }
    return out;
  }

  /** Close the file. */
  close(): void {
    this.file.close();
  }
}
