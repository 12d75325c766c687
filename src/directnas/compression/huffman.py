"""Canonical Huffman codes (stdlib heapq) and fixed-width bit packing of symbol streams.

A code is stored as one length byte per symbol of the alphabet (canonical codes are rebuilt from
the lengths); lengths are capped at ``MAX_LEN`` bits so decoding is one table look-up per symbol.
"""

from __future__ import annotations

import heapq

import numpy as np

MAX_LEN = 20


def code_lengths(freqs: np.ndarray) -> np.ndarray:
    """Huffman code length per symbol (0 for unused symbols), capped at MAX_LEN by flattening."""
    freqs = np.asarray(freqs, dtype=np.int64)
    while True:
        lengths = _lengths(freqs)
        if lengths.max(initial=0) <= MAX_LEN:
            return lengths
        freqs = np.where(freqs > 0, freqs // 2 + 1, 0)  # flatter distribution -> shorter codes


def _lengths(freqs: np.ndarray) -> np.ndarray:
    used = np.flatnonzero(freqs)
    lengths = np.zeros(len(freqs), dtype=np.int64)
    if len(used) == 1:
        lengths[used] = 1
        return lengths
    heap = [(int(freqs[s]), i, [int(s)]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        f1, _, a = heapq.heappop(heap)
        f2, _, b = heapq.heappop(heap)
        lengths[a + b] += 1  # every symbol under the merged node gets one bit deeper
        heapq.heappush(heap, (f1 + f2, tie, a + b))
        tie += 1
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code (an int, MSB first) per symbol from the code lengths."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        prev = int(lengths[s])
        codes[s] = code
        code += 1
    return codes


def _bits_of(values: np.ndarray, widths: np.ndarray, max_width: int) -> np.ndarray:
    """The bit string (uint8 0/1) of every value MSB first, each with its own width."""
    shifts = np.arange(max_width - 1, -1, -1)
    bits = (values[:, None] >> shifts[None, :]) & 1             # (N, max_width) right-aligned
    keep = shifts[None, :] < widths[:, None]
    return bits[keep].astype(np.uint8)


def huffman_encode(symbols: np.ndarray, alphabet: int) -> tuple[bytes, bytes]:
    """(code lengths, packed bit stream) of ``symbols`` in ``range(alphabet)``."""
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    codes = canonical_codes(lengths)
    if symbols.size == 0:
        return lengths.astype(np.uint8).tobytes(), b""
    bits = _bits_of(codes[symbols], lengths[symbols], int(lengths.max()))
    return lengths.astype(np.uint8).tobytes(), np.packbits(bits).tobytes()


def huffman_decode(lengths_b: bytes, stream: bytes, count: int) -> np.ndarray:
    """The ``count`` symbols of a stream written by :func:`huffman_encode`."""
    lengths = np.frombuffer(lengths_b, dtype=np.uint8).astype(np.int64)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    codes = canonical_codes(lengths)
    top = int(lengths.max())
    # table indexed by the next `top` bits: every code fills the slots of its prefix
    sym_tab = np.zeros(1 << top, dtype=np.int64)
    len_tab = np.zeros(1 << top, dtype=np.int64)
    for s in np.flatnonzero(lengths):
        lo = int(codes[s]) << (top - int(lengths[s]))
        hi = lo + (1 << (top - int(lengths[s])))
        sym_tab[lo:hi], len_tab[lo:hi] = s, lengths[s]
    bits = np.concatenate([np.unpackbits(np.frombuffer(stream, dtype=np.uint8)),
                           np.zeros(top, dtype=np.uint8)]).astype(np.int64)
    # window[p] = the `top` bits starting at bit p, as an int
    n = bits.size - top
    window = np.zeros(n, dtype=np.int64)
    for j in range(top):
        window = (window << 1) | bits[j:j + n]
    win, syms, lens = window.tolist(), sym_tab.tolist(), len_tab.tolist()
    out = [0] * count
    pos = 0
    for i in range(count):
        w = win[pos]
        out[i] = syms[w]
        pos += lens[w]
    return np.asarray(out, dtype=np.int64)


def pack_fixed(symbols: np.ndarray, width: int) -> bytes:
    """Symbols as ``width``-bit unsigned ints, MSB first, packed."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return b""
    widths = np.full(symbols.shape, width, dtype=np.int64)
    return np.packbits(_bits_of(symbols, widths, width)).tobytes()


def unpack_fixed(stream: bytes, width: int, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[:count * width]
    bits = bits.reshape(count, width).astype(np.int64)
    return bits @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))
