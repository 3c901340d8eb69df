"""Collaborative filtering: a truncated SVD of the customer x item matrix (scipy's `svds`, ARPACK), behind
the `Recommender` interface. Items come out close to what the customer interacted with in the space of
the `factors` strongest taste patterns of the whole base, so it finds items no one bought together with
theirs but that the same kind of customer buys.

A customer's scores are the fold-in x V V' of their items x (1 for each item bought or viewed): the
projection of their row onto the factor space, so a customer who was not in the matrix (or who bought
since it was built) is scored the same way. `[recommendations] chain = ["collaborative", ...]` uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.linalg import svds

from .._errors import ValidationError
from ._recommend import PURCHASED, Exclusions, History, Recommendation, best

__all__ = ["Factorization"]

Floats = npt.NDArray[np.float64]


@attrs.frozen(eq=False)
class Factorization:
    """`items` and their factor loadings (`vectors`, items x factors, orthonormal columns)."""

    items: tuple[str, ...]
    vectors: Floats
    _numbers: dict[str, int] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_numbers", {item: i for i, item in enumerate(self.items)})

    @classmethod
    def build(cls, rows: Iterable[Iterable[str]], *, factors: int = 32) -> Factorization:
        """Factor the binary matrix of `rows` (one per customer: the items they bought or viewed)."""
        if not isinstance(factors, int) or factors < 1:
            raise ValidationError("must be an integer >= 1", field="factors", value=factors)
        numbers: dict[str, int] = {}
        cols: list[int] = []
        starts = [0]
        for row in rows:
            cols.extend(sorted({numbers.setdefault(item, len(numbers)) for item in row}))
            starts.append(len(cols))
        shape = (len(starts) - 1, len(numbers))
        if min(shape) == 0:
            return cls(items=tuple(numbers), vectors=np.zeros((shape[1], 0)))
        matrix = sparse.csr_matrix((np.ones(len(cols)), np.array(cols, dtype=np.int64), np.array(starts)),
                                   shape=shape)
        rank = min(factors, min(shape) - 1)
        if rank >= 1:
            _, singular, vt = svds(matrix, k=rank, random_state=0)
        else:  # a single customer or item: the dense SVD
            _, singular, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
        kept = singular > 1e-10 * max(float(singular.max()), 1.0)
        return cls(items=tuple(numbers), vectors=np.ascontiguousarray(vt[kept].T))

    def recommend(self, history: History, k: int, *, exclude: Exclusions = PURCHASED) -> list[Recommendation]:
        seeds = [self._numbers[i] for i in dict.fromkeys((*history.purchased, *history.viewed)) if i in self._numbers]
        if not seeds:
            return best((), k, exclude, frozenset(), "collaborative")
        profile = self.vectors[seeds].sum(axis=0)
        scores = self.vectors @ profile
        seen = frozenset(self.items[i] for i in seeds)
        # Rounded past the SVD's own precision: items scored alike (symmetric in the data) tie exactly
        # and are ordered by id, rather than by which last bit the solver's arithmetic happened to set.
        candidates = ((self.items[j], round(s, 12)) for j, s in enumerate(scores.tolist()) if s > 1e-12)
        return best(candidates, k, exclude, exclude.banned(history) | seen, "collaborative")
