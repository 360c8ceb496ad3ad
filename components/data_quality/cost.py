"""What the data_quality stage may cost: a share of the training time it checks the data of.

The stage projects its whole cost from the first batches of its embedding pass and stops there,
saying why, when the projection is over ``data_quality.max_training_share`` of the train stage's
fit time. A check that costs more than the training it audits would be skipped by users anyway;
this way the default is on wherever it is cheap, and the skip is stated, not silent. The pixel
comparison of near-duplicate candidates, whose cost the projection cannot foretell, then stops
at the same budget's end (``neighbours.near_duplicates``' deadline), and says so.
"""

from __future__ import annotations

import time

# The whole stage / its embedding pass. Measured: CIFAR-10 (60,000 images, 50,000 cross-validated,
# 437,281 candidate pairs compared by pixels) 4.2; Caltech-101 (4,069 photos, 101 classes) 1.8
# (BENCHMARKS.md). The larger one is used: a projection too high skips a check, one too low
# overruns the budget.
WHOLE_STAGE_PER_EMBEDDING = 4.2
# Project only after this much of the pass: the first batch also builds the model's graph.
MIN_SECONDS = 5.0
MIN_BATCHES = 3


class OverBudget(Exception):
    """The projected cost is over the allowed share of the training time (the message says so)."""


class Budget:
    """A progress bar's ``advance`` that also decides, once, whether the stage fits its budget."""

    def __init__(self, progress, total_images: int, fit_seconds: float | None, share: float):
        self.progress, self.total, self.fit, self.share = progress, total_images, fit_seconds, share
        self.started, self.done, self.batches, self.decided = time.monotonic(), 0, 0, fit_seconds is None

    @property
    def seconds(self) -> float | None:
        """What the whole stage may spend: ``share`` x the fit time (None: no fit time recorded)."""
        return None if self.fit is None else self.share * self.fit

    def advance(self, images: int) -> None:
        if self.progress is not None:
            self.progress.advance(images)
        self.done += images
        self.batches += 1
        elapsed = time.monotonic() - self.started
        if self.decided or self.batches < MIN_BATCHES or elapsed < MIN_SECONDS or self.done >= self.total:
            return
        self.decided = True
        projected = elapsed / self.done * self.total * WHOLE_STAGE_PER_EMBEDDING
        assert self.seconds is not None
        if projected > self.seconds:
            raise OverBudget(
                f"its projected cost, {projected:.0f} s (from {self.done:,} of {self.total:,} images embedded in "
                f"{elapsed:.0f} s), is more than data_quality.max_training_share ({self.share:g}) x the "
                f"{self.fit:.0f} s the model trained; raise it to check this data"
            )
