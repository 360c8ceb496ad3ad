"""The data_quality stage's section of the config tree (``data_quality.*``): when the stage
runs and the thresholds of each kind of finding (README: data quality)."""

from __future__ import annotations

import dataclasses

from visionpipe.pipeline.typed_tree import ConfigError


@dataclasses.dataclass(frozen=True)
class DataQualityConfig:
    """Likely label errors, near-duplicates (leakage when they cross splits) and outliers, found
    with the trained model's penultimate-layer embeddings (components/data_quality/)."""

    enabled: bool = True  # off: the graph has no data_quality stage
    # On by default wherever it is cheap against the training it audits: the stage projects its
    # cost from the first batches of its embedding pass and records that it skipped, and why,
    # when the projection is over this share of the train stage's fit time (cost.py). Its
    # actual share is in the console summary and the report.
    max_training_share: float = 0.5
    # A hard limit on the images (all splits together), for memory and the all-pairs hash pass
    # (N^2): above it the stage records that it skipped and why.
    max_images: int = 20_000
    batch_size: int = 128  # images per inference batch of the embedding pass
    # Out-of-sample probabilities for train: k-fold cross-validated logistic regression on the
    # embeddings (fewer folds when the smallest class has fewer images; at least 2).
    folds: int = 5
    # Near-duplicates: pairs proposed by the embedding (nearest neighbours at least min_cosine
    # similar, centred and L2-normalised) or by the 64-bit difference hash (at most
    # max_hash_distance bits apart, tightened where plain images collide), then decided by their
    # pixels: grayscale thumbnails correlating at least min_pixel_correlation at their best
    # alignment (crops of up to a fifth of a side, mirror images). On 4,069 Caltech-101 photos
    # every planted copy (resized, recompressed, cropped by 8-10%) reached 0.982; 4 pairs of
    # different pictures of one plain object on white did too, and 8 more at 0.97 (BENCHMARKS.md).
    min_cosine: float = 0.85
    max_hash_distance: int = 5
    min_pixel_correlation: float = 0.98
    # Leakage becomes the near_duplicate_leakage anomaly (validate.severity decides whether it
    # blocks export) when more than this share of the val and test images have a copy in an
    # earlier split: each leaked image the model gets right because it saw the copy adds up to
    # one point per hundred to the measured accuracy, so 5% is about the gate's own interval on
    # small test splits.
    max_leaked_share: float = 0.05
    neighbours: int = 10  # k of the k-nearest-neighbour search (near-duplicate candidates, outlier score)
    # Outliers: an image whose mean distance to its k nearest neighbours (log scale) lies this
    # many robust standard deviations (1.4826 x the median absolute deviation) above the median.
    # Clean synthetic clusters of 40-800 images reach at most 5.
    outlier_min_zscore: float = 6.0
    max_outliers: int = 20  # the most outlying images reported (ranked)
    report_images: int = 24  # findings of each kind shown with thumbnails in the run report; the files list all

    def __post_init__(self):
        limits = (
            ("max_training_share", self.max_training_share, 0.01, None),  # to leave the stage out: enabled: false
            ("max_images", self.max_images, 1, None),
            ("batch_size", self.batch_size, 1, None),
            ("folds", self.folds, 2, None),
            ("min_cosine", self.min_cosine, 0.5, 1.0),  # lower: nearly every neighbour goes to the pixel check
            ("min_pixel_correlation", self.min_pixel_correlation, 0.9, 1.0),  # lower: photos of one plain object
            ("max_hash_distance", self.max_hash_distance, 0, 16),  # of 64 bits; unrelated images differ in ~32
            ("max_leaked_share", self.max_leaked_share, 0.0, 1.0),
            ("neighbours", self.neighbours, 1, None),
            ("outlier_min_zscore", self.outlier_min_zscore, 1.0, None),
            ("max_outliers", self.max_outliers, 0, None),
            ("report_images", self.report_images, 0, None),
        )
        for name, value, low, high in limits:
            if value < low or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"between {low} and {high}"
                raise ConfigError(f"data_quality.{name} must be {bounds}; got {value}")
