"""The ``.dnz`` file: a state dict stored as compactly as its values allow, decoded exactly.

Layout: ``b"DNZ2"``, a little-endian u32 header length, a zlib-deflated compact JSON header (one
entry per tensor: name, shape, layout, value kind, coding, the byte length of each part), then the
parts.  (``DNZ1`` files, whose header is plain JSON, still decode.)  The header is counted in the
file's size; deflating it matters for small nets, whose tensor names are a tenth of the file.

Per floating tensor the encoder tries every layout x value kind that applies and keeps the
smallest:

* layout ``dense`` (every entry) or ``sparse`` (non-zeros only, CSR-style relative positions:
  gaps of 1..2**gap_bits; a longer gap inserts a filler zero entry, as in Deep Compression);
* values ``f32`` (raw float32), ``f16`` (when every value is exactly a float16), ``codebook`` (<= 2**12 distinct values: float32 centroids +
  an index per entry, zero being the extra last index) or ``fixed`` (integers ``q`` with
  ``x == q * 2**-fl`` in ``bw`` bits, when the caller gives ``(bw, fl)`` for that tensor);
* symbol streams (indices, gaps) as fixed-width bits (``bits``) or, with ``huffman=True``, canonical Huffman.

Other tensors (integer buffers) are stored raw.  ``decode_state(encode_state(sd).data)`` equals
``sd`` tensor for tensor (``-0.0`` comes back as ``0.0`` in sparse/codebook layouts).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from directnas.compression.huffman import huffman_decode, huffman_encode, pack_fixed, unpack_fixed

MAGIC = b"DNZ2"
PLAIN_HEADER_MAGIC = b"DNZ1"
MAX_CODEBOOK = 1 << 12
MAX_HUFFMAN_ALPHABET = 1 << 12


@dataclass
class Encoded:
    data: bytes
    tensor_bytes: dict[str, int] = field(default_factory=dict)  # payload bytes per tensor
    layouts: dict[str, str] = field(default_factory=dict)       # e.g. "sparse/codebook/huffman"


def _put_symbols(sym: np.ndarray, alphabet: int, huffman: bool) -> tuple[dict, list[bytes]]:
    if huffman and alphabet <= MAX_HUFFMAN_ALPHABET:
        lengths, stream = huffman_encode(sym, alphabet)
        return {"code": "huffman"}, [lengths, stream]
    width = max(1, math.ceil(math.log2(alphabet)))
    return {"code": "bits", "width": width}, [pack_fixed(sym, width)]


def _get_symbols(meta: dict, parts: Iterator[bytes], count: int) -> np.ndarray:
    if meta["code"] == "huffman":
        lengths = next(parts)
        return huffman_decode(lengths, next(parts), count)
    return unpack_fixed(next(parts), meta["width"], count)


def _sparse(x: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(gap symbols 0..G-1, positions incl. fillers); a filler is a stored zero."""
    g = 1 << gap_bits
    pos = np.flatnonzero(x)
    gaps = np.diff(np.concatenate([[-1], pos]))
    n_fill = (gaps - 1) // g                          # fillers needed before each entry
    reps = n_fill + 1
    out_gaps = np.full(int(reps.sum()), g, dtype=np.int64)
    ends = np.cumsum(reps) - 1                        # the real entry is the last of its group
    out_gaps[ends] = gaps - n_fill * g
    out_pos = np.cumsum(out_gaps) - 1
    return out_gaps - 1, out_pos


def _values(v: np.ndarray, kind: str, fixed: tuple[int, int] | None, huffman: bool,
            ) -> tuple[dict, list[bytes]] | None:
    """Encode the value stream ``v`` (float32) as ``kind``; None when it does not apply."""
    if kind == "f32":
        return {"values": "f32"}, [v.astype("<f4").tobytes()]
    if kind == "f16":  # lossless only: every value must be exactly a float16
        h = v.astype("<f2")
        if not np.array_equal(h.astype(np.float32), v):
            return None
        return {"values": "f16"}, [h.tobytes()]
    if kind == "codebook":
        cb = np.unique(v[v != 0])
        if cb.size > MAX_CODEBOOK:
            return None
        sym = np.where(v != 0, np.searchsorted(cb, v), cb.size)
        meta, parts = _put_symbols(sym, cb.size + 1, huffman)
        return {"values": "codebook", "k": int(cb.size), **meta}, [cb.astype("<f4").tobytes(), *parts]
    assert kind == "fixed" and fixed is not None
    bw, fl = fixed
    q = np.round(v.astype(np.float64) * 2.0 ** fl)
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    if q.min(initial=0) < lo or q.max(initial=0) > hi or not np.array_equal(
            (q * 2.0 ** -fl).astype(np.float32), v):
        return None
    meta, parts = _put_symbols(q.astype(np.int64) - lo, 1 << bw, huffman and bw <= 12)
    return {"values": "fixed", "bw": bw, "fl": fl, **meta}, parts


def _encode_tensor(t: torch.Tensor, *, huffman: bool, gap_bits: int,
                   fixed: tuple[int, int] | None, dense_only: bool) -> tuple[dict, list[bytes]]:
    if t.dtype != torch.float32:
        a = t.detach().cpu().numpy()
        return {"layout": "raw", "dtype": str(a.dtype)}, [a.tobytes()]
    x = t.detach().cpu().contiguous().numpy().ravel()
    kinds = ["f32"] if dense_only else ["f32", "f16", "codebook"] + (["fixed"] if fixed else [])
    best: tuple[dict, list[bytes]] | None = None
    layouts = ["dense"] if dense_only else ["dense", "sparse"]
    for layout in layouts:
        if layout == "dense":
            vals, extra_meta, extra = x, {}, []
        else:
            gsym, pos = _sparse(x, gap_bits)
            vals = x[pos]
            gm, extra = _put_symbols(gsym, 1 << gap_bits, huffman)
            extra_meta = {"count": int(pos.size), "gap_bits": gap_bits,
                          "gaps": gm}
        for kind in kinds:
            enc = _values(vals, kind, fixed, huffman)
            if enc is None:
                continue
            meta = {"layout": layout, **extra_meta, **enc[0]}
            parts = enc[1] + extra
            if best is None or sum(map(len, parts)) < sum(map(len, best[1])):
                best = (meta, parts)
    assert best is not None
    return best


def encode_state(state: dict[str, torch.Tensor], *, huffman: bool = False, gap_bits: int = 5,
                 fixed: dict[str, tuple[int, int]] | None = None,
                 dense_only: bool = False) -> Encoded:
    """Encode a state dict; ``fixed[name] = (bw, fl)`` allows fixed-point values for a tensor."""
    fixed = fixed or {}
    header, blobs = [], []
    out = Encoded(b"")
    for name, t in state.items():
        meta, parts = _encode_tensor(t, huffman=huffman, gap_bits=gap_bits,
                                     fixed=fixed.get(name), dense_only=dense_only)
        header.append({"name": name, "shape": list(t.shape), **meta,
                       "parts": [len(p) for p in parts]})
        blobs.extend(parts)
        out.tensor_bytes[name] = sum(map(len, parts))
        code = meta.get("code", "")
        out.layouts[name] = "/".join(s for s in (meta["layout"], meta.get("values", ""), code) if s)
    h = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    out.data = MAGIC + struct.pack("<I", len(h)) + h + b"".join(blobs)
    return out


def decode_state(data: bytes) -> dict[str, torch.Tensor]:
    if data[:4] not in (MAGIC, PLAIN_HEADER_MAGIC):
        raise ValueError("not a .dnz file (bad magic)")
    (hlen,) = struct.unpack("<I", data[4:8])
    raw = data[8:8 + hlen]
    header = json.loads(zlib.decompress(raw) if data[:4] == MAGIC else raw)
    off = 8 + hlen
    state: dict[str, torch.Tensor] = {}
    for e in header:
        chunks = []
        for n in e["parts"]:
            chunks.append(data[off:off + n])
            off += n
        parts = iter(chunks)
        shape = tuple(e["shape"])
        n = int(np.prod(shape)) if shape else 1
        if e["layout"] == "raw":
            a = np.frombuffer(next(parts), dtype=np.dtype(e["dtype"])).reshape(shape)
            state[e["name"]] = torch.from_numpy(a.copy())
            continue
        count = n if e["layout"] == "dense" else e["count"]
        if e["values"] == "f32":
            vals = np.frombuffer(next(parts), dtype="<f4", count=count)
        elif e["values"] == "f16":
            vals = np.frombuffer(next(parts), dtype="<f2", count=count).astype(np.float32)
        elif e["values"] == "codebook":
            cb = np.concatenate([np.frombuffer(next(parts), dtype="<f4"), np.zeros(1, "<f4")])
            vals = cb[_get_symbols(e, parts, count)]
        else:
            q = _get_symbols(e, parts, count) - (1 << (e["bw"] - 1))
            vals = (q * 2.0 ** -e["fl"]).astype(np.float32)
        if e["layout"] == "dense":
            x = vals
        else:
            pos = np.cumsum(_get_symbols(e["gaps"], parts, count) + 1) - 1
            x = np.zeros(n, dtype=np.float32)
            x[pos] = vals
        state[e["name"]] = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(shape).copy())
    return state
