#!/usr/bin/env python3
"""Read owlgpu's model.sparse.safetensors from Python, with no owlgpu code.

A second, independent reader of the format that ARCHITECTURE.md ("File format") specifies, for
projects outside Deno (PyTorch, numpy): it lists the sparse and dense tensors and turns any sparse
weight back into its dense [rows, cols] matrix, zeros where pruned. It uses numpy when it can
import it and the standard library otherwise (the same result, slower); test/sparse_reader_test.ts
runs it both ways against owlgpu's own reader.

    python3 examples/read_sparse.py pruned/stories15M/model.sparse.safetensors
    python3 examples/read_sparse.py FILE --dense model.layers.0.mlp.down_proj.weight --out w.f32

--out writes the dense matrix as raw little-endian float32, row-major (numpy.fromfile(path,
numpy.float32).reshape(rows, cols)). With numpy, `load_dense(path, name)` returns the array.
"""
import argparse
import json
import os
import struct
import sys

try:
    if os.environ.get("OWLGPU_NO_NUMPY"):
        raise ImportError("OWLGPU_NO_NUMPY is set")
    import numpy as np
except ImportError:
    np = None

ELEMENT_BYTES = {"F32": 4, "U32": 4, "F16": 2, "BF16": 2, "U8": 1}


class SparseFile:
    """The header of a model.sparse.safetensors file and byte access to its arrays."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else size
            if 8 + n > size:
                raise ValueError(f"{path}: header length {n} is past the end of the {size}-byte file: truncated")
            try:
                self.header = json.loads(f.read(n))
            except ValueError as e:
                raise ValueError(f"{path}: the header is not valid JSON ({e}); not safetensors") from e
        self.data_start = 8 + n
        arrays = [t for k, t in self.header.items() if k != "__metadata__"]
        end = self.data_start + max((t["data_offsets"][1] for t in arrays), default=0)
        if end > size:
            raise ValueError(f"{path}: {size} bytes, but its arrays end at byte {end}: truncated")
        meta = self.header.get("__metadata__", {})
        if meta.get("owlgpu.sparse") != "1":
            raise ValueError(f"{path}: not an owlgpu sparse file (no owlgpu.sparse = 1 in __metadata__)")
        # The sparse weights: name -> {"format", "shape", "dtype"} (+ "keep", "group" for nm).
        self.sparse = json.loads(meta["owlgpu.sparse.tensors"])

    def dense_names(self):
        """Arrays that are tensors of their own (embeddings, norms, unpruned linears)."""
        parts = {f"{w}.{p}" for w in self.sparse for p in ("bitmap", "row_offsets", "values", "indices")}
        return [k for k in self.header if k != "__metadata__" and k not in parts]

    def raw(self, name):
        begin, end = self.header[name]["data_offsets"]
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            return f.read(end - begin)

    def array(self, name):
        """An array as a flat list of numbers (numpy array with numpy), converted to Python floats or ints."""
        dtype, raw = self.header[name]["dtype"], self.raw(name)
        if np is not None:
            if dtype == "BF16":
                return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            return np.frombuffer(raw, {"F32": "<f4", "U32": "<u4", "F16": "<f2", "U8": "u1"}[dtype])
        if dtype == "BF16":
            return [struct.unpack("<f", b"\0\0" + raw[i : i + 2])[0] for i in range(0, len(raw), 2)]
        code = {"F32": "f", "U32": "I", "F16": "e", "U8": "B"}[dtype]
        return list(struct.unpack(f"<{len(raw) // ELEMENT_BYTES[dtype]}{code}", raw))


def dense(file, name):
    """The dense [rows, cols] matrix of sparse weight `name`: a numpy float32 array, or a flat list."""
    spec = file.sparse[name]
    rows, cols = spec["shape"]
    values = file.array(f"{name}.values")
    if spec["format"] == "unstructured":
        return _dense_unstructured(file, name, rows, cols, values)
    if spec["format"] == "nm":
        return _dense_nm(file, name, rows, cols, spec["keep"], spec["group"], values)
    raise ValueError(f"{name}: unknown sparse format {spec['format']!r}")


def _dense_unstructured(file, name, rows, cols, values):
    # Bit j of word w of row r set: column 32w + j is kept; its value is the next one of the row's
    # values (row-major, increasing column), so the set bits in row-major order take `values` in order.
    words = (cols + 31) // 32
    bitmap, offsets = file.array(f"{name}.bitmap"), file.array(f"{name}.row_offsets")
    if np is not None:
        bits = np.unpackbits(np.asarray(bitmap, "<u4").view(np.uint8), bitorder="little")
        mask = bits.reshape(rows, words * 32)[:, :cols].astype(bool)
        if int(offsets[-1]) != len(values) or int(mask.sum()) != len(values):
            raise ValueError(f"{name}: the bitmap's set bits do not match the row offsets and values")
        out = np.zeros((rows, cols), np.float32)
        out[mask] = values
        return out
    out = [0.0] * (rows * cols)
    for r in range(rows):
        v = offsets[r]
        for w in range(words):
            word = bitmap[r * words + w]
            while word:
                j = (word & -word).bit_length() - 1  # lowest set bit
                out[r * cols + 32 * w + j] = values[v]
                v += 1
                word &= word - 1
        if v != offsets[r + 1]:
            raise ValueError(f"{name}: row {r} has {v - offsets[r]} set bits but {offsets[r + 1] - offsets[r]} values")
    return out


def _dense_nm(file, name, rows, cols, keep, group, values):
    # Slot e of a row: position (within its group of `group` columns) in `bits` bits, little-endian
    # within the row's index bytes; column floor(e / keep) * group + position; value 0 = padding.
    bits = 2 if group <= 4 else 4 if group <= 16 else 8
    groups = (cols + group - 1) // group
    slots = groups * keep
    row_bytes = (slots * bits + 7) // 8
    indices = file.array(f"{name}.indices")
    if np is not None:
        idx = np.asarray(indices, np.uint8).reshape(rows, row_bytes)
        e = np.arange(slots)
        pos = (idx[:, (e * bits) >> 3] >> ((e * bits) & 7)) & ((1 << bits) - 1)
        col = (e // keep) * group + pos
        vals = np.asarray(values, np.float32).reshape(rows, slots)
        out = np.zeros((rows, cols), np.float32)
        r, s = np.nonzero(vals)
        out[r, col[r, s]] = vals[r, s]
        return out
    out = [0.0] * (rows * cols)
    for r in range(rows):
        for e in range(slots):
            v = values[r * slots + e]
            if v == 0:
                continue
            b = indices[r * row_bytes + ((e * bits) >> 3)]
            pos = (b >> ((e * bits) & 7)) & ((1 << bits) - 1)
            out[r * cols + (e // keep) * group + pos] = v
    return out


def load_dense(path, name):
    """The dense numpy float32 [rows, cols] matrix of sparse weight `name` in the file at `path`."""
    if np is None:
        raise ImportError("load_dense returns a numpy array: install numpy, or use dense() for a flat list")
    return dense(SparseFile(path), name)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="a model.sparse.safetensors")
    p.add_argument("--dense", metavar="NAME", help="a sparse weight to turn back into a dense matrix")
    p.add_argument("--out", metavar="PATH", help="with --dense: write it as raw little-endian float32")
    a = p.parse_args(argv)
    try:
        f = SparseFile(a.file)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: {e}")
    if a.dense:
        if a.dense not in f.sparse:
            sys.exit(f"error: {a.dense} is not a sparse weight of {a.file}")
        d = dense(f, a.dense)
        flat = d.ravel().tolist() if np is not None else d
        rows, cols = f.sparse[a.dense]["shape"]
        kept = sum(1 for x in flat if x != 0)
        print(f"{a.dense}: [{rows}, {cols}], {kept} nonzeros ({100 * (1 - kept / (rows * cols)):.2f}% zeros)")
        if a.out:  # a temporary name, renamed when complete: never a half-written file
            tmp = f"{a.out}.tmp-{os.getpid()}"
            try:
                with open(tmp, "wb") as out:
                    out.write(struct.pack(f"<{len(flat)}f", *flat))
                os.replace(tmp, a.out)
            except OSError as e:
                sys.exit(f"error: cannot write {a.out}: {e.strerror}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        return
    print(f"{a.file}: {len(f.sparse)} sparse weights, {len(f.dense_names())} dense tensors"
          f" ({'numpy' if np is not None else 'standard library'})")
    for name, spec in f.sparse.items():
        rows, cols = spec["shape"]
        nnz = len(f.array(f"{name}.values")) if spec["format"] == "unstructured" else None
        extra = f" {spec['keep']}:{spec['group']}" if spec["format"] == "nm" else ""
        kept = f", {nnz} kept ({100 * (1 - nnz / (rows * cols)):.2f}% zeros)" if nnz is not None else ""
        print(f"  {name}: {spec['format']}{extra} {spec['dtype']} [{rows}, {cols}]{kept}")
    for name in f.dense_names():
        h = f.header[name]
        print(f"  {name}: dense {h['dtype']} {h['shape']}")


if __name__ == "__main__":
    main(sys.argv[1:])
