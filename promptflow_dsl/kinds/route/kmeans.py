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


def _spread(x: np.ndarray) -> tuple[int, float]:
    """How many distinct rows ``x`` has (to six decimals) and its inertia as one cluster
    (the sum of squared distances to its mean); ``(0, 0.0)`` for no rows."""
    if not len(x):
        return 0, 0.0
    return len(np.unique(np.round(x, 6), axis=0)), float(((x - x.mean(axis=0)) ** 2).sum())


def assign(vectors: np.ndarray, max_k: int, *, penalty: float = PENALTY,
           use_sklearn: bool | None = None) -> Assignment:
    """Cluster ``vectors`` into K in 2..max_k groups, K chosen by the criterion above.

    With fewer than two distinct vectors there is one cluster.
    """
    x = _normalise(vectors)
    n = len(x)
    if use_sklearn is None:
        use_sklearn = have_sklearn()
    distinct, inertia_1 = _spread(x)
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


# --- Mixture-of-Prompts' reference clustering (`protocol mop`) --------------------------

MOP_TEMPLATE = "Input: {input}\nOutput: "  # MoP's demo template with an empty output


def n_init_auto(init: str = "k-means++") -> int:
    """scikit-learn's ``n_init='auto'``: one run for k-means++ seeding, ten for random."""
    return 1 if init == "k-means++" else 10


def mop_k_range(max_k: int, n: int) -> range:
    """The values of K MoP tries: ``range(2, max(3, min(max_k, n) + 1))``."""
    return range(2, max(3, min(max_k, n) + 1))


@dataclass
class MopClusters:
    """MoP's clustering: K, each row's k-means label (not renumbered), the centres
    (``kmeans.cluster_centers_``, what ``kmeans.predict`` measures against) and the
    criterion per K."""

    k: int
    labels: list[int]
    centers: np.ndarray
    criterion: dict[int, float] = field(default_factory=dict)
    backend: str = "numpy"


def _fit_mop(x: np.ndarray, k: int, seed: int, use_sklearn: bool
             ) -> tuple[np.ndarray, float, np.ndarray]:
    """(labels, inertia, centres) of one k-means fit with ``n_init='auto'``."""
    if use_sklearn:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=n_init_auto(), random_state=seed).fit(x)
        return np.asarray(km.labels_), float(km.inertia_), np.asarray(km.cluster_centers_)
    labels, inertia = _kmeans_numpy(x, k, seed, n_init=n_init_auto())
    centers = np.stack([x[labels == j].mean(axis=0) if (labels == j).any() else x[0]
                        for j in range(k)])
    return labels, inertia, centers


def assign_mop(vectors: np.ndarray, max_k: int, *, seed: int = 0, penalty: float = PENALTY,
               use_sklearn: bool | None = None) -> MopClusters:
    """Cluster as MoP does: the raw (not normalised) vectors, K in :func:`mop_k_range`,
    ``inertia_K / inertia_1 + penalty * K`` (the first minimum wins), one k-means++ run
    per K (``n_init='auto'``) with ``random_state=seed``.  Fewer than two distinct rows:
    one cluster."""
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if use_sklearn is None:
        use_sklearn = have_sklearn()
    distinct, inertia_1 = _spread(x)
    if distinct < 2 or inertia_1 <= 0:
        centre = x.mean(axis=0, keepdims=True) if n else np.zeros((1, 0))
        return MopClusters(1, [0] * n, centre, {}, "none")
    backend = "scikit-learn" if use_sklearn else "numpy"
    criterion: dict[int, float] = {}
    for k in mop_k_range(max_k, n):
        if k > distinct:
            break
        _, inertia, _ = _fit_mop(x, k, seed, use_sklearn)
        criterion[k] = inertia / inertia_1 + penalty * k
    best = min(criterion, key=lambda k: (criterion[k], k))
    labels, _, centers = _fit_mop(x, best, seed, use_sklearn)
    return MopClusters(best, [int(v) for v in labels], centers, criterion, backend)


@dataclass
class MopPartition:
    """MoP's demo assignment: the row indices each expert shows (|D| // max_k of them,
    sampled or tiled) and the rows left out (``trimmed``: proposal material)."""

    size: int
    indices: list[list[int]]
    trimmed: list[int]


def mop_partition(labels: list[int], k: int, max_k: int, seed: int = 0) -> MopPartition:
    """|D| // max_k demos per expert, as MoP assigns them: a cluster with more rows
    keeps ``random.sample`` of them (one seeded generator, clusters in label order; the
    rest are *trimmed*), a smaller one is tiled (``[a, b, a, b, ...]``) up to the size."""
    import random

    rng = random.Random(seed)
    n = len(labels)
    size = n // max(1, max_k)
    out: list[list[int]] = []
    trimmed: list[int] = []
    for j in range(k):
        members = [i for i, lab in enumerate(labels) if lab == j]
        if len(members) > size:
            kept = rng.sample(members, size)
            trimmed += sorted(set(members) - set(kept))
            out.append(kept)
        elif not members:
            out.append([])
        else:
            tiled = list(members)
            while len(tiled) < size:
                tiled = tiled * 2
            out.append(tiled[:size])
    return MopPartition(size, out, trimmed)
