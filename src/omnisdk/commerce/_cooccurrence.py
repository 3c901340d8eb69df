"""Bought-together and viewed-together: item-to-item co-occurrence, kept as the top `k` neighbours per item.

Baskets (orders, or browsing sessions) become a sparse basket x item matrix B; the co-occurrence counts
are B'B, computed for a block of items at a time and cut to each item's `k` best neighbours before the
next block, so memory is bounded by the block budget and items x k, never items x items. numpy and scipy
are imported here (`pip install 'omnisdk[commerce]'`).
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs
import numpy as np
import numpy.typing as npt
from scipy import sparse

from .._errors import ValidationError
from ._recommend import PURCHASED, Exclusions, History, Recommendation, best

__all__ = ["CoOccurrence", "ItemToItem", "Measure"]

Measure = Literal["count", "cosine", "lift"]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@attrs.frozen(eq=False)
class CoOccurrence:
    """Each item's `k` best neighbours by `measure`: `count` (baskets with both), `cosine`
    (count / sqrt(n_i n_j)) or `lift` (count * baskets / (n_i n_j)); n_i is the baskets holding item i.
    Neighbours of item number i are `neighbours[indptr[i]:indptr[i+1]]`, best first."""

    items: tuple[str, ...]
    indptr: Ints
    neighbours: Ints
    scores: Floats
    measure: Measure
    _numbers: dict[str, int] = attrs.field(init=False, repr=False)
    _name_order: Ints = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_numbers", {item: i for i, item in enumerate(self.items)})
        object.__setattr__(self, "_name_order", _name_order(self.items))

    @classmethod
    def build(
        cls,
        baskets: Iterable[Iterable[str]],
        *,
        k: int = 50,
        measure: Measure = "cosine",
        min_together: int = 1,
        block_pairs: int = 2_000_000,
    ) -> CoOccurrence:
        """Count how often items share a basket (an item repeated in one basket counts once) and keep each
        item's `k` best neighbours among those sharing at least `min_together` baskets. At most about
        `block_pairs` pair counts are held at once (about 24 bytes each) besides the result."""
        if min(k, min_together, block_pairs) < 1:
            raise ValidationError("k, min_together and block_pairs must be >= 1", field="k", value=k)
        if measure not in ("count", "cosine", "lift"):
            raise ValidationError("must be count, cosine or lift", field="measure", value=measure)
        numbers: dict[str, int] = {}
        columns = array("i")  # 4 bytes an order line, where a list of ints takes 8 plus the ints
        starts = array("q", [0])
        for basket in baskets:
            columns.extend({numbers.setdefault(item, len(numbers)) for item in basket})
            starts.append(len(columns))
        items = tuple(numbers)
        cols = np.frombuffer(columns, dtype=np.int32) if columns else np.zeros(0, dtype=np.int32)
        b = sparse.csr_matrix(
            (np.ones(len(cols), dtype=np.int32), cols, np.frombuffer(starts, dtype=np.int64)),
            shape=(len(starts) - 1, len(items)),
        )
        del numbers
        indptr, neighbours, scores = _top_neighbours(b, k, measure, min_together, _name_order(items), block_pairs)
        return cls(items=items, indptr=indptr, neighbours=neighbours, scores=scores, measure=measure)

    def related(self, item: str) -> list[tuple[str, float]]:
        """`item`'s neighbours and their scores, best first (none for an item never seen)."""
        i = self._numbers.get(item)
        if i is None:
            return []
        start, stop = self.indptr[i], self.indptr[i + 1]
        names = self.items
        neighbours, scores = self.neighbours[start:stop].tolist(), self.scores[start:stop].tolist()
        return [(names[j], s) for j, s in zip(neighbours, scores, strict=True)]

    def number(self, item: str) -> int | None:
        return self._numbers.get(item)

    def matrix(self) -> sparse.csr_matrix:
        """The kept neighbours as a sparse item x item matrix of scores."""
        n = len(self.items)
        return sparse.csr_matrix((self.scores, self.neighbours, self.indptr), shape=(n, n))


def _name_order(items: tuple[str, ...]) -> Ints:
    """Each item's rank by id: the tie-break that makes answers reproducible."""
    order = np.empty(len(items), dtype=np.int64)
    order[np.argsort(np.array(items, dtype=object), kind="stable")] = np.arange(len(items))
    return order


def _top_by_row(rows: Ints, cols: Ints, scores: Floats, k: int, name_order: Ints) -> tuple[Ints, Ints, Floats]:
    """Each row's `k` best (col, score) entries, rows ascending, best first, ties by item id. `rows` must be
    ascending. Entries below their row's k-th largest score go first (a partition, not a sort), so the sort
    that breaks ties sees about k entries per row however long the rows are."""
    keep = scores >= _kth_largest_per_row(rows, scores, k) if k else np.zeros(len(rows), dtype=bool)
    rows, cols, scores = rows[keep], cols[keep], scores[keep]
    order = np.lexsort((name_order[cols], -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    top = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") < k  # rank within the row
    return rows[top], cols[top], scores[top]


def _kth_largest_per_row(rows: Ints, scores: Floats, k: int, cells: int = 1 << 22) -> Floats:
    """For each entry, the k-th largest score of its row (-inf when the row has k entries or fewer). Rows
    are laid out in dense tables padded with -inf, one per power-of-two row length (so padding at most
    doubles them), at most `cells` cells at a time, and partitioned."""
    threshold = np.full(len(rows), -np.inf)
    if not len(rows):
        return threshold
    starts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
    lengths = np.diff(np.append(starts, len(rows)))
    widths = np.where(lengths > k, 1 << np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int64), 0)
    for width in np.unique(widths[widths > 0]).tolist():
        chosen = widths == width
        entries = np.flatnonzero(np.repeat(chosen, lengths))  # the entries of these rows, by row
        row_of = np.repeat(np.arange(int(chosen.sum())), lengths[chosen])
        position = entries - np.repeat(starts[chosen], lengths[chosen])
        step = max(1, cells // width)
        bounds = np.searchsorted(row_of, np.arange(0, int(chosen.sum()) + step, step))
        for lo, hi in itertools.pairwise(bounds.tolist()):
            if lo == hi:
                continue
            first = int(row_of[lo])
            table = np.full((int(row_of[hi - 1]) - first + 1, width), -np.inf)
            table[row_of[lo:hi] - first, position[lo:hi]] = scores[entries[lo:hi]]
            kth = np.partition(table, width - k, axis=1)[:, width - k]
            threshold[entries[lo:hi]] = kth[row_of[lo:hi] - first]
    return threshold


def _top_neighbours(
    b: sparse.csr_matrix, k: int, measure: Measure, min_together: int, name_order: Ints, block_pairs: int
) -> tuple[Ints, Ints, Floats]:
    n_baskets, n_items = b.shape
    held = np.bincount(b.indices, minlength=n_items).astype(np.float64)  # n_i
    by_item = b.T.tocsr()
    # Σ over item i's baskets of their sizes bounds row i of B'B: blocks are cut on it
    work = by_item @ np.diff(b.indptr).astype(np.float64)
    budgets = np.arange(block_pairs, work.sum() + block_pairs, block_pairs)
    cuts = np.minimum(np.searchsorted(np.cumsum(work), budgets) + 1, n_items)
    edges = np.unique(np.concatenate([[0], cuts, [n_items]])).astype(np.int64)
    counts_per_row = np.zeros(n_items, dtype=np.int64)
    kept_cols: list[Ints] = []
    kept_scores: list[Floats] = []
    for start, stop in itertools.pairwise(edges.tolist()):
        block = (by_item[start:stop] @ b).tocsr()
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(block.indptr))
        cols = block.indices.astype(np.int64)
        together = block.data.astype(np.float64)
        keep = (cols != rows) & (together >= min_together)
        rows, cols, together = rows[keep], cols[keep], together[keep]
        if measure == "cosine":
            score = together / np.sqrt(held[rows] * held[cols])
        elif measure == "lift":
            score = together * n_baskets / (held[rows] * held[cols])
        else:
            score = together
        rows, cols, score = _top_by_row(rows, cols, score, k, name_order)
        counts_per_row += np.bincount(rows, minlength=n_items)
        kept_cols.append(cols)
        kept_scores.append(score)
        del block
    indptr = np.concatenate([[0], np.cumsum(counts_per_row)]).astype(np.int64)
    neighbours = np.concatenate(kept_cols) if kept_cols else np.zeros(0, dtype=np.int64)
    scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0)
    return indptr, neighbours, scores


@attrs.frozen
class ItemToItem:
    """Items related to the customer's last `recent` purchases (`seeds="purchased"`: bought together) or
    views (`"viewed"`: viewed together), each scored by its summed similarity to them. The seeds themselves
    are never recommended."""

    index: CoOccurrence
    seeds: Literal["purchased", "viewed"] = "purchased"
    recent: int = 20

    @property
    def reason(self) -> str:
        return "bought_together" if self.seeds == "purchased" else "viewed_together"

    def _seeds(self, history: History) -> list[str]:
        source = history.purchased if self.seeds == "purchased" else history.viewed
        return list(dict.fromkeys(reversed(source)))[: self.recent]

    def recommend(self, history: History, k: int, *, exclude: Exclusions = PURCHASED) -> list[Recommendation]:
        seeds = self._seeds(history)
        index = self.index
        scores: dict[int, float] = {}
        for seed in seeds:
            i = index.number(seed)
            if i is not None:
                start, stop = int(index.indptr[i]), int(index.indptr[i + 1])
                for j, score in zip(
                    index.neighbours[start:stop].tolist(), index.scores[start:stop].tolist(), strict=True
                ):
                    scores[j] = scores.get(j, 0.0) + score
        names = index.items
        candidates = ((names[j], score) for j, score in scores.items())
        return best(candidates, k, exclude, exclude.banned(history) | frozenset(seeds), self.reason)

    def recommend_many(
        self, histories: Sequence[History], k: int, *, exclude: Exclusions = PURCHASED, chunk: int = 1024
    ) -> list[list[Recommendation]]:
        """`recommend` for many customers at once, `chunk` customers per sparse product (which bounds the
        memory); the same answers, up to the last bits of summed float scores."""
        if k < 0 or chunk < 1:
            raise ValidationError("k must be >= 0 and chunk >= 1", field="k", value=k)
        index = self.index
        allowed = np.ones(len(index.items), dtype=bool)
        available = exclude.available
        for number, item in enumerate(index.items):
            if item in exclude.items or (available is not None and item not in available):
                allowed[number] = False
        answers: list[list[Recommendation]] = []
        for first in range(0, len(histories), chunk):
            answers += self._recommend_chunk(histories[first : first + chunk], k, exclude.purchased, allowed)
        return answers

    def _recommend_chunk(
        self, histories: Sequence[History], k: int, without_purchased: bool, allowed: npt.NDArray[np.bool_]
    ) -> list[list[Recommendation]]:
        index = self.index
        seed_rows: list[int] = []
        seed_cols: list[int] = []
        banned_rows: list[int] = []
        banned_cols: list[int] = []
        number = index.number
        for row, history in enumerate(histories):
            seeds = [n for n in map(number, self._seeds(history)) if n is not None]
            seed_rows += [row] * len(seeds)
            seed_cols += seeds
            banned = set(seeds)
            if without_purchased:
                banned.update(n for n in map(number, history.purchased) if n is not None)
            banned_rows += [row] * len(banned)
            banned_cols += banned
        shape = (len(histories), len(index.items))
        scores = (_binary(seed_rows, seed_cols, shape) @ index.matrix()).tocsr()
        scores = scores - scores.multiply(_binary(banned_rows, banned_cols, shape))  # every score is > 0
        scores.sort_indices()
        rows = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(scores.indptr))
        cols, values = scores.indices.astype(np.int64), scores.data
        keep = allowed[cols] & (values != 0)
        rows, cols, values = _top_by_row(rows[keep], cols[keep], values[keep], k, index._name_order)
        answers: list[list[Recommendation]] = [[] for _ in histories]
        reason, names = self.reason, index.items
        for row, col, value in zip(rows.tolist(), cols.tolist(), values.tolist(), strict=True):
            answers[row].append(Recommendation(names[col], value, reason))
        return answers


def _binary(rows: list[int], cols: list[int], shape: tuple[int, int]) -> sparse.csr_matrix:
    return sparse.csr_matrix(
        (np.ones(len(rows)), (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))), shape=shape
    )
