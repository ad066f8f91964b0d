"""Record keys that are unique within a table but carry nothing about the person."""

from __future__ import annotations

import numpy as np

_MASK = (1 << 40) - 1
# Odd multipliers and xor-shifts are bijections modulo 2**40, so distinct inputs stay distinct.
_MULT1 = 0x9E3779B97F
_MULT2 = 0xC2B2AE3D27


def scrambled(block: int, seq: np.ndarray, salt: int) -> np.ndarray:
    """Distinct 40-bit integers for distinct (block, seq < 2**20), shuffled by salt."""
    raw = (np.uint64(block) << np.uint64(20)) | np.asarray(seq, dtype=np.uint64)
    mask = np.uint64(_MASK)
    x = (raw + np.uint64((salt * 0x5851F42D) & _MASK)) & mask
    x = (x * np.uint64(_MULT1)) & mask
    x ^= x >> np.uint64(19)
    x = (x * np.uint64(_MULT2)) & mask
    return x ^ (x >> np.uint64(17))


def keys(prefix: str, block: int, seq: np.ndarray, salt: int, width: int = 10) -> np.ndarray:
    """Upper-case base-36 keys such as `AE0K3F9ZQ2T1`."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for v in scrambled(block, seq, salt).tolist():
        chars = []
        for _ in range(width - len(prefix)):
            v, r = divmod(v, 36)
            chars.append(digits[r])
        out.append(prefix + "".join(reversed(chars)))
    return np.array(out, dtype=object)
