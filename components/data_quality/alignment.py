"""Whether two images show the same picture, judged by their pixels: the best correlation of
their grayscale thumbnails over crops of either image (up to a fifth off each side) and their
mirror images, searched coarse to fine.

The embedding and the difference hash only propose pairs. Each errs in its own way: a weak
model draws every photo of a class close together, and a 64-bit hash matches different dark or
plain photos. Aligned pixels tell a copy (resized, recompressed, cropped, mirrored, brightened:
the correlation is centred and normalised) from another photo of the same thing. On 4,069
Caltech-101 photos with 100 planted copies, every copy scored at least 0.982, and 4 pairs of
different pictures of one plain object on white did too (two of motorbikes, two Buddha
statues, two yin-yang drawings): BENCHMARKS.md.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

THUMBNAIL = 64  # side of the grayscale thumbnail each image keeps (4 KB)
COARSE = 24  # side at which the grid of crops is searched (sampled from a 32-pixel thumbnail)
FINE = 48  # side at which the best crop is refined (sampled from the 64-pixel thumbnail)
# Below this coarse correlation a pair is not refined: planted copies reached at least 0.89, and
# refining is what costs (75 crops a pair at 48 pixels).
SCREEN = 0.8
CHUNK = 512  # pairs compared at a time: 2 x CHUNK x 37 crops of COARSE x COARSE floats in memory
CROP_SIDES = (0.95, 0.9, 0.85, 0.8)  # crops of each of these shares of the side ...
CROP_PLACES = (0.0, 0.5, 1.0)  # ... at the start, middle and end of the room left, in both axes
REFINE_STEPS = (-0.02, -0.01, 0.0, 0.01, 0.02)  # moves of the best crop's corner (share of the side)
REFINE_SIZES = (-0.02, 0.0, 0.02)  # changes of its side
# Rounds of refinement, each from the last one's best box: two reach 4% from a grid box, which
# covers the grid's widest gap (the 80% crops' places are 10% apart).
REFINE_ROUNDS = 2


def _grid() -> np.ndarray:
    """[K, 4] crop boxes (top, left, bottom, right as shares of the image): the whole image first."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for side in CROP_SIDES:
        for down in CROP_PLACES:
            for across in CROP_PLACES:
                top, left = down * (1 - side), across * (1 - side)
                boxes.append((top, left, top + side, left + side))
    return np.array(boxes, np.float32)


GRID = _grid()
WHOLE = GRID[:1]
REFINEMENTS = np.array([(dy, dx, ds) for dy in REFINE_STEPS for dx in REFINE_STEPS for ds in REFINE_SIZES], np.float32)


def _sampled(images: np.ndarray, boxes: np.ndarray, which: np.ndarray, size: int) -> np.ndarray:
    """Each box of image ``which[n]`` resampled to ``size`` x ``size``, centred and unit-length:
    [n, size, size]. Samples sit at the centres of the output pixels (crop_and_resize's own
    boxes put them on the edges, which shifts two crops of one picture against each other)."""
    source = images.shape[1]
    top, left, bottom, right = boxes.T

    def span(start, end):  # (first, last sample) in crop_and_resize's units: 0 and 1 = the edge pixels
        step = (end - start) * source / size
        first, last = start * source + step / 2 - 0.5, start * source + (size - 0.5) * step - 0.5
        return first / (source - 1), last / (source - 1)

    (y0, y1), (x0, x1) = span(top, bottom), span(left, right)
    tf_boxes = np.stack([y0, x0, y1, x1], axis=1).astype(np.float32)
    crops = tf.image.crop_and_resize(images[..., None], tf_boxes, which.astype(np.int32), (size, size)).numpy()[..., 0]
    crops -= crops.mean(axis=(1, 2), keepdims=True)
    return crops / np.maximum(np.sqrt((crops**2).sum(axis=(1, 2), keepdims=True)), 1e-6)


def _coarse(grids: np.ndarray, cropped: np.ndarray, whole: np.ndarray):
    """For each pair (the grid crops ``grids[cropped[n]]`` against the whole image
    ``grids[whole[n], 0]``): the best correlation over the grid and mirror images, the box and
    whether mirrored."""
    crops, reference = grids[cropped], grids[whole, 0]
    straight = np.einsum("nkij,nij->nk", crops, reference)
    mirrored = np.einsum("nkij,nij->nk", crops[..., ::-1], reference)
    flip = mirrored.max(axis=1) > straight.max(axis=1)
    scores = np.where(flip[:, None], mirrored, straight)
    best = scores.argmax(axis=1)
    return scores[np.arange(len(cropped)), best], GRID[best], flip


def _refined(large: np.ndarray, cropped: np.ndarray, whole: np.ndarray, boxes: np.ndarray, flip: np.ndarray):
    """(the best correlation over small moves and resizes of each pair's box, at FINE pixels;
    the box that gave it)."""
    n, k = len(cropped), len(REFINEMENTS)
    moved = np.repeat(boxes[:, None, :], k, axis=1)
    side = moved[..., 2] - moved[..., 0] + REFINEMENTS[None, :, 2]
    moved[..., 0] += REFINEMENTS[None, :, 0]
    moved[..., 1] += REFINEMENTS[None, :, 1]
    moved[..., 2], moved[..., 3] = moved[..., 0] + side, moved[..., 1] + side
    crops = _sampled(large, moved.reshape(-1, 4), np.repeat(cropped, k), FINE).reshape(n, k, FINE, FINE)
    crops = np.where(flip[:, None, None, None], crops[..., ::-1], crops)
    reference = _sampled(large, np.repeat(WHOLE, n, axis=0), whole, FINE)
    scores = np.einsum("nkij,nij->nk", crops, reference)
    best = scores.argmax(axis=1)
    return scores[np.arange(n), best], moved[np.arange(n), best]


def _chunk(thumbnails: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    images, local = np.unique(np.concatenate([first, second]), return_inverse=True)
    large = thumbnails[images].astype(np.float32)
    small = tf.image.resize(large[..., None], (THUMBNAIL // 2, THUMBNAIL // 2), method="area").numpy()[..., 0]
    # Each image's grid of crops once, whichever pairs and side it is on (GRID[0]: the whole).
    k = len(GRID)
    grids = _sampled(small, np.tile(GRID, (len(images), 1)), np.repeat(np.arange(len(images)), k), COARSE)
    grids = grids.reshape(len(images), k, COARSE, COARSE)
    a, b = local[: len(first)], local[len(first) :]
    one_way, other_way = _coarse(grids, a, b), _coarse(grids, b, a)
    reverse = other_way[0] > one_way[0]  # crop the second image instead
    score = np.maximum(one_way[0], other_way[0])
    cropped, whole = np.where(reverse, b, a), np.where(reverse, a, b)
    box = np.where(reverse[:, None], other_way[1], one_way[1])
    flip = np.where(reverse, other_way[2], one_way[2])
    close = np.flatnonzero(score >= SCREEN)
    box = box[close]
    for _ in range(REFINE_ROUNDS if len(close) else 0):
        refined, box = _refined(large, cropped[close], whole[close], box, flip[close])
        score[close] = np.maximum(score[close], refined)
    return score


def aligned_correlation(
    thumbnails: np.ndarray, first: np.ndarray, second: np.ndarray, deadline: float | None = None
) -> np.ndarray:
    """For each pair (first[n], second[n]) of uint8 [N, THUMBNAIL, THUMBNAIL] grayscale
    thumbnails: the correlation of their pixels at the best alignment found (1 = the same
    picture; unrelated photos rarely pass 0.8). With a ``deadline`` (``time.monotonic()``), the
    pairs are compared in the order given, CHUNK at a time, until the next chunk would end after
    it (the first always runs): the scores of the pairs compared, a prefix of them."""
    scores = []
    for start in range(0, len(first), CHUNK):
        began = time.monotonic()
        scores.append(_chunk(thumbnails, first[start : start + CHUNK], second[start : start + CHUNK]))
        ended = time.monotonic()
        if deadline is not None and ended + (ended - began) > deadline:
            break
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)
