"""Nearest-centroid routing: one centroid per expert, distances from an input.

An expert's centroid is the mean of its demos' (unit) embedding vectors.  The
distance from an input is the **cosine distance** ``1 - cos(input, centroid)``
(0 = same direction, 1 = unrelated, up to 2 = opposite): it ignores vector length,
which for the offline embedder and most embedding models carries no meaning, and it
does not favour an expert whose demos are spread out (whose centroid is short).
``euclidean`` (the distance between the unit input and the centroid) is available
to library users.  Ties go to the expert written first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("cosine", "euclidean")


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        n = float(np.linalg.norm(x))
        return x / n if n > 0 else x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


@dataclass
class Centroids:
    """Expert names and their centroids (one row each)."""

    names: list[str]
    matrix: np.ndarray
    metric: str = "cosine"

    @classmethod
    def from_groups(cls, groups: dict[str, np.ndarray], metric: str = "cosine") -> Centroids:
        """Centroids of groups of demo vectors (name -> rows), in the order given."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r} (expected {', '.join(METRICS)})")
        names = list(groups)
        rows = [unit(np.asarray(v)).mean(axis=0) for v in groups.values()]
        return cls(names, np.stack(rows) if rows else np.zeros((0, 0)), metric)

    def distances(self, vector: np.ndarray) -> dict[str, float]:
        """Distance from ``vector`` to every centroid, by expert name."""
        q = unit(np.asarray(vector, dtype=np.float64).reshape(-1))
        if self.metric == "cosine":
            c = unit(self.matrix)
            d = 1.0 - c @ q
        else:
            d = np.linalg.norm(self.matrix - q[None, :], axis=1)
        return {n: float(round(v, 6)) for n, v in zip(self.names, d.tolist(), strict=True)}

    def nearest(self, vector: np.ndarray) -> tuple[str, dict[str, float]]:
        """(name of the nearest expert, all distances)."""
        dist = self.distances(vector)
        best = min(self.names, key=lambda n: (dist[n], self.names.index(n)))
        return best, dist
