"""Exact top-k inner product over a large gallery, with a fast first pass that only narrows.

One float32 scan of 100,000 x 512 reads 205 MB: ~10-20 ms a query on this 2-core machine,
bound by memory, and a batch of 8 queries still costs ~3 ms each. So the gallery is scanned in
int8 (4x fewer bytes, one integer matrix product per batch: oneDNN's u8 x s8 kernel, the one
PyTorch's x86 int8 inference uses) and every score of that pass comes with a proven error
bound; the rows that can still be among the ``k`` best are rescored exactly. The answer is the
exact one whatever the data: the first pass decides only how many rows are rescored.

The bound, for a unit query ``q`` and a unit row ``g`` (``q~``, ``g~`` their int8 forms, each a
step times integers, so ``q~ . g~`` is computed without error in int32)::

    |q . g - q~ . g~| <= |q - q~| |g| + |q~| |g - g~|     (Cauchy-Schwarz, twice)

with ``|q - q~|`` and ``|q~|`` computed per query and ``|g - g~|`` bounded by its largest value
over the rows (kept per chunk). If ``T`` is the k-th largest lower bound, k rows score at
least ``T``, so every row of the true top k scores at least ``T`` and has an upper bound of at
least ``T``: those rows are the candidates, rescored from their float32 features in float64
(exact products, so a score does not depend on the batch it was computed in), ties broken by
the order of enrolment.

Rows are packed in chunks of ``chunk`` rows (packing costs ~3 us a row); the newest rows wait
in a float32 tail (scanned in float32, with the float32 error bound) until they fill a chunk.
Each chunk is one call of the kernel, and a call costs ~75 us beyond its rows here, so small
chunks are merged: a gallery loaded at once is packed ``MERGE * chunk`` rows at a time, and
whenever ``MERGE`` chunks of at most ``chunk`` rows have been packed (enrolments as they come),
they are repacked as one (a 100,000-row scan: 25 calls before, 7 after; ``benchmarks/
exact_search.py`` measures both). A removed row is masked in its chunk (a bias of -1e30) until
a quarter of the chunk is removed, then the chunk is repacked. Without the int8 kernel (another
build of PyTorch, another CPU) or if its self-check fails, every row stays in the tail: a plain
float32 scan, still exact.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

log = logging.getLogger("omnireid.serve")

CHUNK = 4096
MERGE = 4  # chunks of at most CHUNK rows merged into one
BLOCK = 64  # queries scored at once
GROUP = 64  # first-pass scores looked at in groups of this many (their maxima first)
_Q_MAX = 63  # query codes in [-63, 63], sent as uint8 around the zero point 64: no int16
_ZERO = 64  # saturation in kernels without VNNI (two products of 127 x 127 fit)
_G_MAX = 127
_MASKED = -1e30
_SLACK = 1e-5  # float32 rounding of the first pass's products and scales (~1e-7), with margin

Rows = Callable[[np.ndarray], np.ndarray]  # seqs -> their (n, D) float32 unit rows
_PINNED = threading.local()


def _one_thread() -> None:
    """Run this thread's torch operations on one thread, leaving other threads as they were.

    A search is one matrix product bound by memory: a second OpenMP thread gains little and,
    on a small machine, spins on the core the event loop needs (with 2 threads a batch of 8
    took 5-15x the CPU time here). OpenMP and MKL keep the thread count per calling thread,
    but ``torch.set_num_threads`` also sets the default that threads created later start
    with, so that default is put back from a helper thread (whose own setting is dropped).
    """
    if getattr(_PINNED, "done", False):
        return
    import torch

    before = torch.get_num_threads()  # also torch's per-thread initialisation, done first
    torch.set_num_threads(1)
    helper = threading.Thread(target=torch.set_num_threads, args=(before,))
    helper.start()
    helper.join()
    _PINNED.done = True


def _int8_kernel() -> tuple[Callable, Callable] | None:
    """oneDNN's prepack and u8 x s8 -> float32 product, or None when absent or wrong here."""
    try:
        import torch

        prepack = torch.ops.onednn.qlinear_prepack
        product = torch.ops.onednn.qlinear_pointwise

        def scores(x: torch.Tensor, packed, scale, zero, bias) -> torch.Tensor:
            return product(x, 1.0, _ZERO, packed, scale, zero, bias, 1.0, 0, torch.float32,
                           "none", [], "")  # fmt: skip

        rng = np.random.default_rng(0)  # self-check against int64 arithmetic, extremes included
        codes = rng.integers(-_G_MAX, _G_MAX + 1, (40, 72)).astype(np.int8)
        codes[:2] = _G_MAX * np.sign(codes[:2] + 0.5).astype(np.int8)
        x = rng.integers(_ZERO - _Q_MAX, _ZERO + _Q_MAX + 1, (5, 72)).astype(np.uint8)
        x[0], x[1] = _ZERO + _Q_MAX, _ZERO - _Q_MAX
        scale = np.linspace(0.5, 2.0, 40, dtype=np.float32)
        got = scores(
            torch.from_numpy(x), prepack(torch.from_numpy(codes), None), torch.from_numpy(scale),
            torch.zeros(40, dtype=torch.int64), torch.zeros(40),
        ).numpy()  # fmt: skip
        want = (x.astype(np.int64) - _ZERO) @ codes.astype(np.int64).T * scale.astype(np.float64)
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=0):
            log.warning("the int8 first pass disagrees with exact arithmetic here: not used")
            return None
    except Exception as e:  # absent op, other signature, CPU without the kernel
        log.info("no int8 first pass (%s): exact float32 scan", type(e).__name__)
        return None
    return (lambda codes: prepack(torch.from_numpy(codes), None)), scores


def _padded(parts: list, b: int):
    """The ``(b, n)`` score tensors side by side, with -inf columns up to a multiple of GROUP."""
    import torch

    pad = -sum(p.shape[1] for p in parts) % GROUP
    return torch.cat([*parts, torch.full((b, pad), -np.inf)] if pad else parts, 1)


def _k_best(scores, k: int):
    """``scores`` ``(B, n)`` (n a multiple of GROUP) as ``(B, groups, GROUP)`` with the
    groups' maxima, and the ``k`` best values of each row (``(B, k)`` float64, -inf for lack).

    The k best values of a row lie in the k groups with the largest maxima (a group holding
    one of them has a maximum at least as large, and fewer than k other groups can beat it),
    so only those groups are sorted: ~10x less than a top-k over the whole row.
    """
    import torch

    b = scores.shape[0]
    grouped = scores.view(b, -1, GROUP)
    maxima = grouped.amax(2)
    best = torch.topk(maxima, min(k, maxima.shape[1]), dim=1).indices
    values = torch.gather(grouped, 1, best[:, :, None].expand(-1, -1, GROUP)).reshape(b, -1)
    top = torch.topk(values, min(k, values.shape[1]), dim=1).values.double().numpy()
    if top.shape[1] < k:
        top = np.concatenate([top, np.full((b, k - top.shape[1]), -np.inf)], 1)
    return (grouped, maxima), top


def _at_least(grouped, least: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(row, column)`` of every score ``>= least[row]``, looking only into the groups
    whose maximum reaches it."""
    import torch

    grouped, maxima = grouped
    down = least.astype(np.float32)  # rounded down, never up: no row at the limit is lost
    down = np.where(down > least, np.nextafter(down, np.float32(-np.inf)), down)
    threshold = torch.from_numpy(down)
    rows, gs = torch.nonzero(maxima >= threshold[:, None], as_tuple=True)
    inside = torch.nonzero(grouped[rows, gs] >= threshold[rows, None], as_tuple=True)
    cols = gs[inside[0]] * GROUP + inside[1]
    return rows[inside[0]].numpy(), cols.numpy()


class _Chunk:
    """Up to ``CHUNK`` rows as int8 codes (one scale per row), packed for the kernel."""

    def __init__(self, seqs: np.ndarray, rows: np.ndarray, kernel: tuple[Callable, Callable]):
        import torch

        pack, self._scores = kernel
        scale = (np.abs(rows).max(axis=1) / _G_MAX).astype(np.float32)
        scale[scale == 0] = 1.0
        codes = np.clip(np.rint(rows / scale[:, None]), -_G_MAX, _G_MAX).astype(np.int8)
        error = rows.astype(np.float64) - codes * scale[:, None].astype(np.float64)
        self.residual = float(np.linalg.norm(error, axis=1).max())  # max |g - g~|
        self.seqs = seqs.copy()
        self.pos = {int(s): i for i, s in enumerate(seqs)}
        self.packed = pack(codes)
        self.scale = torch.from_numpy(scale)
        self.zero = torch.zeros(len(seqs), dtype=torch.int64)
        self.bias = torch.zeros(len(seqs))  # _MASKED at removed rows
        self.removed = 0

    def scores(self, x):
        """``(B, n)`` float32 tensor: int8 dot products times the rows' scales (masked: -1e30)."""
        return self._scores(x, self.packed, self.scale, self.zero, self.bias)

    def remove(self, seq: int) -> None:
        i = self.pos.pop(seq)
        self.bias[i], self.removed = _MASKED, self.removed + 1

    def live(self) -> np.ndarray:
        return self.seqs[self.bias.numpy() == 0]


class ExactSearch:
    """Exact top-k by inner product over unit ``(D,)`` rows named by integer ``seq``s; ``rows``
    returns the float32 rows of given seqs (the store keeps them)."""

    def __init__(self, dim: int, rows: Rows, chunk: int = CHUNK, int8: bool = True) -> None:
        self.dim, self._rows, self.chunk = dim, rows, chunk
        self._kernel = _int8_kernel() if int8 else None
        self._chunks: list[_Chunk] = []
        self._where: dict[int, _Chunk | None] = {}  # seq -> its chunk (None: the tail)
        self._buf = np.empty((0, dim), np.float32)  # the tail: its first _n rows
        self._buf_seqs = np.empty(0, np.int64)
        self._n = 0
        self._chunk_seqs = np.empty(0, np.int64)  # the chunks' seqs, concatenated

    @property
    def int8(self) -> bool:
        return self._kernel is not None

    def __len__(self) -> int:
        return len(self._where)

    @property
    def _tail(self) -> np.ndarray:
        return self._buf[: self._n]

    @property
    def _tail_seqs(self) -> np.ndarray:
        return self._buf_seqs[: self._n]

    def add(self, seqs: np.ndarray, rows: np.ndarray) -> None:
        """Append unit rows (``(N, D)`` float32) under new ``seqs``."""
        seqs, start = np.asarray(seqs, np.int64), 0
        big = MERGE * self.chunk
        while start < len(seqs):
            if self._kernel is not None and self._n == 0 and len(seqs) - start >= big:
                end = start + big  # a gallery loaded at once: large chunks straight away
                self._pack(seqs[start:end], rows[start:end])
            else:
                end = len(seqs) if self._kernel is None else start + self.chunk - self._n
                self._append(seqs[start:end], rows[start:end])
            start = end

    def _append(self, seqs: np.ndarray, rows: np.ndarray) -> None:
        end = self._n + len(seqs)
        if end > len(self._buf):  # grow by doubling (never beyond one chunk with the kernel)
            size = max(end, 2 * len(self._buf), 64)
            size = min(size, self.chunk) if self._kernel is not None else size
            more = size - self._n
            self._buf = np.concatenate([self._tail, np.empty((more, self.dim), np.float32)])
            self._buf_seqs = np.concatenate([self._tail_seqs, np.empty(more, np.int64)])
        self._buf[self._n : end], self._buf_seqs[self._n : end] = rows, seqs
        self._n = end
        self._where.update(dict.fromkeys(map(int, seqs)))
        if self._kernel is not None and self._n == self.chunk:
            self._pack(self._buf_seqs, self._buf)
            self._n = 0
            self._merge_small()

    def _merge_small(self) -> None:
        """Repack the chunks of at most ``chunk`` rows as one once there are ``MERGE``."""
        small = [c for c in self._chunks if len(c.seqs) <= self.chunk]
        if len(small) < MERGE:
            return
        live = np.concatenate([c.live() for c in small])
        self._chunks = [c for c in self._chunks if len(c.seqs) > self.chunk]
        self._reseq()
        if len(live):
            self._pack(live, self._rows(live))

    def flush(self) -> None:
        """Pack the tail now, however short (after loading a gallery: nothing is scanned in
        float32 until new rows come)."""
        if self._kernel is not None and self._n:
            self._pack(self._tail_seqs, self._tail)
            self._n = 0

    def remove(self, seq: int) -> None:
        chunk = self._where.pop(seq)
        if chunk is None:  # the tail's last row takes its place
            i, last = int(np.flatnonzero(self._tail_seqs == seq)[0]), self._n - 1
            self._buf[i], self._buf_seqs[i] = self._buf[last], self._buf_seqs[last]
            self._n = last
            return
        chunk.remove(seq)
        if chunk.removed * 4 > len(chunk.seqs):  # repack what is left of it
            self._chunks.remove(chunk)
            live = chunk.live()
            self._reseq()
            if len(live):
                self._pack(live, self._rows(live))

    def _reseq(self) -> None:
        """The chunks' seqs again, in the order their scores are concatenated."""
        seqs = [c.seqs for c in self._chunks] or [np.zeros(0, np.int64)]
        self._chunk_seqs = np.concatenate(seqs).astype(np.int64)

    def _pack(self, seqs: np.ndarray, rows: np.ndarray) -> None:
        assert self._kernel is not None
        chunk = _Chunk(seqs, rows, self._kernel)
        self._chunks.append(chunk)
        self._where.update(dict.fromkeys(map(int, seqs), chunk))
        self._chunk_seqs = np.concatenate([self._chunk_seqs, chunk.seqs])

    def search(self, q: np.ndarray, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """For each unit query of ``(B, D)`` float32: the seqs of its ``k`` best rows and their
        scores (float64, exact products), best first; ties in enrolment order."""
        if len(q) > BLOCK:  # the first pass's scores are (queries, rows): bounded memory
            done = [self.search(q[s : s + BLOCK], k) for s in range(0, len(q), BLOCK)]
            return [x for d in done for x in d[0]], [x for d in done for x in d[1]]
        import torch  # its matrix products: numpy's OpenBLAS is slow at these shapes here

        _one_thread()
        if not self._where:
            return [np.empty(0, np.int64)] * len(q), [np.empty(0)] * len(q)
        k = min(k, len(self._where))
        parts = []  # (B, n) first-pass scores in the part's units, their unit, bound, seqs
        if self._chunks:
            step = np.abs(q).max(axis=1).astype(np.float64) / _Q_MAX  # (B,), > 0: unit rows
            codes = np.clip(np.rint(q / step[:, None]), -_Q_MAX, _Q_MAX)
            approx = codes * step[:, None]
            bound = (
                np.linalg.norm(q - approx, axis=1) * (1 + _SLACK)
                + np.linalg.norm(approx, axis=1) * max(c.residual for c in self._chunks)
                + _SLACK
            )
            x = torch.from_numpy((codes + _ZERO).astype(np.uint8))
            scores = _padded([c.scores(x) for c in self._chunks], len(q))
            parts.append((scores, step, bound, self._chunk_seqs))
        if self._n:  # float32: |error| <= D 2^-24 for unit rows (any order of summation)
            bound32 = np.full(len(q), self.dim * 2.0**-24 * (1 + 1e-3) + 1e-7)
            scores = _padded([torch.from_numpy(q) @ torch.from_numpy(self._tail).T], len(q))
            parts.append((scores, np.ones(len(q)), bound32, self._tail_seqs))
        # each part's k best first-pass scores, their lower bounds, and the k-th best lower
        # bound over all parts: the floor
        groups, lows = [], []
        for scores, unit, bound, _ in parts:
            grouped, top = _k_best(scores, k)
            groups.append(grouped)
            low = top * unit[:, None] - bound[:, None]
            lows.append(np.where(top > _MASKED / 2, low, -np.inf))
        low = np.concatenate(lows, axis=1)
        floor = -np.partition(-low, k - 1, axis=1)[:, k - 1]
        found: list[list[np.ndarray]] = [[] for _ in q]
        for (_, unit, bound, seqs), grouped in zip(parts, groups, strict=True):
            # the rows whose upper bound reaches the floor, in the part's units, never masked
            least = np.maximum((floor - bound) / unit - _SLACK, _MASKED / 2)
            rows, cols = _at_least(grouped, least)
            for b in range(len(q)):
                found[b].append(seqs[cols[rows == b]])
        return self._rescore(q, [np.concatenate(f) for f in found], k)

    def _rescore(self, q: np.ndarray, cands: list[np.ndarray], k: int):
        every = np.unique(np.concatenate(cands))
        feats = self._rows(every).astype(np.float64)
        seqs_out, scores_out = [], []
        for b, c in enumerate(cands):
            at = np.searchsorted(every, c)
            exact = np.einsum("nd,d->n", feats[at], q[b].astype(np.float64))
            order = np.lexsort((c, -exact))[:k]
            seqs_out.append(c[order])
            scores_out.append(exact[order])
        return seqs_out, scores_out
