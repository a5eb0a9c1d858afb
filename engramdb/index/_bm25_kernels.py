"""The compiled loops behind :mod:`engramdb.index.bm25` (imported on first search).

The arithmetic is the one numpy did over whole postings, element by element: a
float32 term frequency (``own * w_own + ctx * w_ctx``), a float32 numerator
(``tf * idf``, then ``* (k1 + 1)``), divided in float64 by ``norm + tf``, and added
to the label's float64 sum. No fast-math: every float is reproducible; numpy's
error model, so a division by zero gives inf or nan as it does in numpy.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def accumulate(
    acc: np.ndarray,
    seen: np.ndarray,
    touched: np.ndarray,
    n: int,
    labels: np.ndarray,
    gens: np.ndarray,
    own: np.ndarray,
    ctx: np.ndarray,
    doc_gen: np.ndarray,
    stale: bool,
    allowed: np.ndarray,
    use_allowed: bool,
    w_own: np.float32,
    w_ctx: np.float32,
    idf: np.float32,
    k1p1: np.float32,
    norm: np.ndarray,
) -> int:
    """Add one term's parts into ``acc``; list labels first met in ``touched[n:]``.

    Returns the new count of touched labels.
    """
    bound = allowed.shape[0]
    for i in range(labels.shape[0]):
        label = labels[i]
        if stale and gens[i] != doc_gen[label]:
            continue
        if use_allowed and (label >= bound or not allowed[label]):
            continue
        tf = np.float32(own[i]) * w_own
        if w_ctx != 0:
            tf = tf + np.float32(ctx[i]) * w_ctx
        num = tf * idf
        num = num * k1p1
        acc[label] += np.float64(num) / (norm[label] + np.float64(tf))
        if not seen[label]:
            seen[label] = True
            touched[n] = label
            n += 1
    return n


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _worse(va: float, la: int, vb: float, lb: int) -> bool:
    """Whether (va, la) ranks below (vb, lb): a lower sum, or an equal one and a higher label."""
    return va < vb or (va == vb and la > lb)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sift_down(hv: np.ndarray, hl: np.ndarray, size: int, v: float, label: int) -> None:
    """Put (v, label) at the root of the min-heap of ``size`` and restore the order."""
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _worse(hv[c + 1], hl[c + 1], hv[c], hl[c]):
            c += 1
        if not _worse(hv[c], hl[c], v, label):
            break
        hv[i] = hv[c]
        hl[i] = hl[c]
        i = c
    hv[i] = v
    hl[i] = label


@numba.njit(cache=True, nogil=True, error_model="numpy")
def top_k(
    acc: np.ndarray, seen: np.ndarray, touched: np.ndarray, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` touched labels (sum descending, then label), and reset the scratch."""
    m = min(k, n)
    hv = np.empty(m, np.float64)
    hl = np.empty(m, np.int32)
    size = 0
    for j in range(n):
        label = touched[j]
        v = acc[label]
        acc[label] = 0.0
        seen[label] = False
        if size < m:  # sift up
            i = size
            size += 1
            while i > 0:
                p = (i - 1) >> 1
                if not _worse(v, label, hv[p], hl[p]):
                    break
                hv[i] = hv[p]
                hl[i] = hl[p]
                i = p
            hv[i] = v
            hl[i] = label
        elif m > 0 and _worse(hv[0], hl[0], v, label):
            _sift_down(hv, hl, size, v, label)
    # Pop the worst to the back: best first.
    out_v = np.empty(m, np.float64)
    out_l = np.empty(m, np.int32)
    for j in range(m - 1, -1, -1):
        out_v[j] = hv[0]
        out_l[j] = hl[0]
        size -= 1
        if size > 0:
            _sift_down(hv, hl, size, hv[size], hl[size])
    return out_l, out_v


@numba.njit(cache=True, nogil=True, error_model="numpy")
def collect(
    acc: np.ndarray, seen: np.ndarray, touched: np.ndarray, n: int, labels: np.ndarray
) -> np.ndarray:
    """Each of ``labels``' sum (0 beyond the scratch), then reset the scratch."""
    out = np.zeros(labels.shape[0], np.float64)
    bound = acc.shape[0]
    for i in range(labels.shape[0]):
        label = labels[i]
        if 0 <= label < bound:
            out[i] = acc[label]
    for j in range(n):
        acc[touched[j]] = 0.0
        seen[touched[j]] = False
    return out
