"""Demo assignment for ``experts auto from FILE max K`` (Wang et al., 2024, §3.2).

The demos' inputs are embedded, k-means runs for every K from 2 to ``max_k``, and the
K that minimises

    inertia_K / inertia_1 + 0.02 * K

is kept (``inertia_1`` is the sum of squared distances to the mean of all vectors);
each cluster becomes one expert.  The vectors are L2-normalised first, so k-means'
Euclidean distance orders points as the router's cosine distance does.

scikit-learn's ``KMeans`` (k-means++, ``n_init=10``, ``random_state=0``) does the
clustering when it is installed.  Without it a small numpy implementation of the same
algorithm (greedy k-means++ seeding, Lloyd iterations, best of ``n_init`` seeded runs) is
used, so routes keep working where scikit-learn is not installed; both are
deterministic for a given input.  Clusters are numbered by their first member in file
order, so ``expert_1`` holds the first demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PENALTY = 0.02
N_INIT = 10
SEED = 0
MAX_ITER = 300
ALGORITHM_VERSION = 1


@dataclass
class Assignment:
    """The chosen number of clusters, each row's cluster (0-based) and the criterion."""

    k: int
    labels: list[int]
    criterion: dict[int, float] = field(default_factory=dict)
    inertia: dict[int, float] = field(default_factory=dict)
    backend: str = "numpy"


def have_sklearn() -> bool:
    try:
        import sklearn.cluster  # noqa: F401
    except ImportError:
        return False
    return True


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def _kmeans_numpy(x: np.ndarray, k: int, seed: int, n_init: int = N_INIT
                  ) -> tuple[np.ndarray, float]:
    """Best of ``n_init`` k-means++ / Lloyd runs: (labels, inertia)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    best: tuple[np.ndarray, float] | None = None
    for _ in range(n_init):
        # greedy k-means++ (as scikit-learn): of 2 + log(k) sampled candidates, the one
        # that lowers the potential most becomes the next center
        trials = 2 + int(np.log(k))
        centers = np.empty((k, x.shape[1]))
        centers[0] = x[rng.integers(n)]
        d2 = np.maximum(sq - 2 * x @ centers[0] + centers[0] @ centers[0], 0)
        for j in range(1, k):
            total = d2.sum()
            if total <= 0:
                centers[j] = x[int(rng.integers(n))]
                continue
            cand = rng.choice(n, size=trials, p=d2 / total)
            dc = np.maximum(sq[None, :] - 2 * x[cand] @ x.T + sq[cand][:, None], 0)
            pots = np.minimum(d2[None, :], dc).sum(axis=1)
            pick = int(pots.argmin())
            centers[j] = x[cand[pick]]
            d2 = np.minimum(d2, dc[pick])
        labels = np.zeros(n, dtype=int)
        for it in range(MAX_ITER):
            dist = sq[:, None] - 2 * x @ centers.T + np.einsum("ij,ij->i", centers, centers)[None]
            new = dist.argmin(axis=1)
            if it and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    centers[j] = members.mean(axis=0)
                else:  # an empty cluster takes the point farthest from its center
                    far = int(dist[np.arange(n), labels].argmax())
                    centers[j] = x[far]
        inertia = float(((x - centers[labels]) ** 2).sum())
        if best is None or inertia < best[1] - 1e-12:
            best = (labels.copy(), inertia)
    assert best is not None
    return best


def _kmeans(x: np.ndarray, k: int, use_sklearn: bool) -> tuple[np.ndarray, float]:
    if use_sklearn:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=N_INIT, random_state=SEED, max_iter=MAX_ITER).fit(x)
        return np.asarray(km.labels_), float(km.inertia_)
    return _kmeans_numpy(x, k, SEED)


def _renumber(labels: np.ndarray) -> list[int]:
    """Cluster numbers in order of each cluster's first member."""
    order: dict[int, int] = {}
    for lab in labels.tolist():
        order.setdefault(lab, len(order))
    return [order[lab] for lab in labels.tolist()]


def assign(vectors: np.ndarray, max_k: int, *, penalty: float = PENALTY,
           use_sklearn: bool | None = None) -> Assignment:
    """Cluster ``vectors`` into K in 2..max_k groups, K chosen by the criterion above.

    With fewer than two distinct vectors there is one cluster.
    """
    x = _normalise(vectors)
    n = len(x)
    if use_sklearn is None:
        use_sklearn = have_sklearn()
    distinct = len(np.unique(np.round(x, 6), axis=0)) if n else 0
    inertia_1 = float(((x - x.mean(axis=0)) ** 2).sum()) if n else 0.0
    if distinct < 2 or inertia_1 <= 0:
        return Assignment(1, [0] * n, {}, {1: inertia_1}, "none")
    out = Assignment(0, [], {}, {1: inertia_1}, "scikit-learn" if use_sklearn else "numpy")
    best_labels: np.ndarray | None = None
    best_value = float("inf")
    for k in range(2, min(max_k, distinct) + 1):
        labels, inertia = _kmeans(x, k, use_sklearn)
        value = inertia / inertia_1 + penalty * k
        out.inertia[k] = inertia
        out.criterion[k] = value
        if value < best_value - 1e-12:
            best_value, best_labels, out.k = value, labels, k
    assert best_labels is not None
    out.labels = _renumber(best_labels)
    out.k = len(set(out.labels))
    return out
