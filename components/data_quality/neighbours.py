"""Near-duplicates and outliers from one blockwise k-nearest-neighbour search over the
embeddings, plus an all-pairs comparison of the 64-bit difference hashes: both propose pairs,
and the images' aligned pixels decide (alignment.py).

Embeddings are centred (the mean over all images subtracted: ReLU features all point into one
orthant, so raw cosines are high for any two images) and L2-normalised, then compared a block of
rows at a time against all of them, so memory is rows x N, never N x N.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from visionpipe.components.data_quality.alignment import aligned_correlation

BLOCK = 1024  # rows compared at a time: BLOCK x N similarities in memory
HASH_BLOCK = 256  # hashes compared at a time (BLOCK x N 64-bit XORs and their bit counts)
# Copies are rare: when the closest 5% of images have another image within some hash distance,
# a hash match that close does not tell a copy from a look-alike in this data (in the MNIST
# sample 5% of the digits have a hash twin 0 bits away; in Caltech-101 the closest 5% are 6
# bits apart).
HASH_RARITY = 0.05
MAD_TO_STD = 1.4826  # the median absolute deviation of a normal distribution, in standard deviations


@dataclasses.dataclass(frozen=True)
class Pair:
    first: int  # the lower index
    second: int
    cosine: float  # of the centred embeddings
    hash_distance: int  # bits of 64 in which the difference hashes differ
    correlation: float  # of the pixels at their best alignment (alignment.py)


@dataclasses.dataclass(frozen=True)
class Neighbours:
    indices: np.ndarray  # int [N, k]: each image's k nearest others, nearest first
    cosines: np.ndarray  # float [N, k]


def normalized(embeddings: np.ndarray) -> np.ndarray:
    """Centred, unit-length rows (a constant row stays zero)."""
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norms, 1e-12)


def nearest(unit: np.ndarray, k: int) -> Neighbours:
    """Each row's ``k`` most similar other rows (fewer when there are fewer rows)."""
    n = len(unit)
    k = min(k, n - 1)
    indices, cosines = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        similarity = unit[rows] @ unit.T
        similarity[np.arange(similarity.shape[0]), np.arange(rows.start, rows.stop)] = -np.inf  # not itself
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k] if k else np.zeros((similarity.shape[0], 0), int)
        order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
        indices[rows] = np.take_along_axis(top, order, axis=1)
        cosines[rows] = np.take_along_axis(similarity, indices[rows], axis=1)
    return Neighbours(indices, cosines)


def hash_distances(hashes: np.ndarray, rows: slice) -> np.ndarray:
    """Bits in which ``hashes[rows]`` differ from every hash: uint8 [rows, N]."""
    return np.bitwise_count(hashes[rows, None] ^ hashes[None, :])


def _hash_blocks(hashes: np.ndarray):
    """(first row, distances of rows first.. to every hash, itself at 65: above any distance)."""
    for start in range(0, len(hashes), HASH_BLOCK):
        block = slice(start, min(start + HASH_BLOCK, len(hashes)))
        distances = hash_distances(hashes, block)
        distances[np.arange(block.stop - start), np.arange(start, block.stop)] = 65
        yield start, distances


def hash_limit(hashes: np.ndarray, max_hash_distance: int) -> int:
    """The largest hash distance that tells a copy in this data: ``max_hash_distance``, but
    closer than the nearest other hash of all but the closest HASH_RARITY of the images
    (-1: the hash tells nothing here, e.g. small plain digits)."""
    if len(hashes) < 2:
        return -1
    nearest_hash = np.concatenate([distances.min(axis=1) for _, distances in _hash_blocks(hashes)])
    return min(max_hash_distance, int(np.quantile(nearest_hash, HASH_RARITY)) - 1)


def candidates(hashes: np.ndarray, neighbours: Neighbours, min_cosine: float, max_hash_distance: int) -> np.ndarray:
    """[P, 2] pairs (lower index first, each once) worth comparing by pixels: nearest neighbours
    whose embeddings agree (cosine >= ``min_cosine``), and any two images whose hashes are at
    most ``max_hash_distance`` bits apart (all pairs: a copy the model embeds apart still
    matches by hash; -1 = the hash tells nothing in this data)."""
    found: set[tuple[int, int]] = set()
    rows, columns = np.nonzero(neighbours.cosines >= min_cosine)
    close = zip(rows, neighbours.indices[rows, columns], strict=True)
    found.update((min(int(i), int(j)), max(int(i), int(j))) for i, j in close)
    for start, distances in _hash_blocks(hashes) if max_hash_distance >= 0 else ():
        close_rows, close_columns = np.nonzero(distances <= max_hash_distance)
        found.update((start + int(i), int(j)) for i, j in zip(close_rows, close_columns, strict=True) if start + i < j)
    return np.array(sorted(found), np.int64).reshape(-1, 2)


def near_duplicates(
    unit: np.ndarray,
    hashes: np.ndarray,
    thumbnails: np.ndarray,
    neighbours: Neighbours,
    min_cosine: float,
    max_hash_distance: int,
    min_correlation: float,
    deadline: float | None = None,
) -> tuple[list[Pair], int, int]:
    """(the candidate pairs (``candidates``) whose pixels correlate at least ``min_correlation``
    at their best alignment (alignment.py), most alike first; how many candidates were compared;
    how many were proposed). The candidates are compared most similar embeddings first, so a
    ``deadline`` (``time.monotonic()``) that stops the comparison leaves out the least likely copies."""
    pairs = candidates(hashes, neighbours, min_cosine, max_hash_distance)
    cosines = np.einsum("ij,ij->i", unit[pairs[:, 0]], unit[pairs[:, 1]])
    order = np.argsort(-cosines, kind="stable")
    pairs, cosines = pairs[order], cosines[order]
    first, second = pairs[:, 0], pairs[:, 1]
    correlation = aligned_correlation(thumbnails, first, second, deadline)
    alike = np.flatnonzero(correlation >= min_correlation)
    found = [
        Pair(int(first[n]), int(second[n]), float(cosines[n]),
             int(np.bitwise_count(hashes[first[n]] ^ hashes[second[n]])), float(correlation[n]))
        for n in alike
    ]  # fmt: skip
    return sorted(found, key=lambda p: -p.correlation), len(correlation), len(pairs)


def outlier_scores(neighbours: Neighbours) -> np.ndarray:
    """Each image's mean distance (on the unit sphere) to its k nearest neighbours: far from
    every image = high (0 for a lone image, which has no neighbour)."""
    if neighbours.cosines.shape[1] == 0:
        return np.zeros(len(neighbours.cosines))
    return np.sqrt(np.maximum(2.0 - 2.0 * neighbours.cosines, 0.0)).mean(axis=1)


def outliers(scores: np.ndarray, min_zscore: float, limit: int) -> list[tuple[int, float]]:
    """(index, robust z-score) of the images whose log score lies at least ``min_zscore`` robust
    standard deviations above the median, most outlying first, at most ``limit``. The log makes
    the right-skewed distances about symmetric, so a clean dataset's far tail stays below 5."""
    logs = np.log(np.maximum(scores, 1e-12))
    median = float(np.median(logs))
    spread = MAD_TO_STD * float(np.median(np.abs(logs - median)))
    if spread <= 0:
        return []  # at least half the images share one score: nothing stands out by this measure
    z = (logs - median) / spread
    ranked = np.argsort(-z)
    return [(int(i), float(z[i])) for i in ranked[:limit] if z[i] >= min_zscore]
