"""The data_quality stage's checks on tiny synthetic embeddings: planted label errors,
near-duplicates across splits and outliers are found; clean, well-separated data gives no finding."""

from __future__ import annotations

import time

import numpy as np
import pytest

from visionpipe.components.data_quality import executor
from visionpipe.components.data_quality import findings as files
from visionpipe.components.data_quality.alignment import THUMBNAIL, aligned_correlation
from visionpipe.components.data_quality.config import DataQualityConfig
from visionpipe.components.data_quality.executor import _label_findings, _leakage_anomaly, _neighbour_findings
from visionpipe.components.data_quality.label_issues import label_issues, out_of_sample_probabilities
from visionpipe.components.data_quality.neighbours import (
    candidates,
    hash_limit,
    nearest,
    normalized,
    outlier_scores,
    outliers,
)
from visionpipe.components.data_quality.report import summary_line
from visionpipe.components.data_quality.spec import Params
from visionpipe.pipeline.artifacts import DataQuality
from visionpipe.pipeline.typed_tree import ConfigError

CLASSES = ["a", "b", "c", "d"]


def blobs(seed: int, per_class: int = 60, dims: int = 16, spread: float = 1.0):
    """Well-separated Gaussian clusters, one per class: (embeddings, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(CLASSES), dims)) * 6
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    return (centres[labels] + rng.normal(0, spread, (len(labels), dims))).astype(np.float32), labels


def embedded(seed: int, splits: tuple[str, ...] = ("train",) * 200 + ("val",) * 20 + ("test",) * 20):
    """An ``Embedded`` of clean blobs spread over the splits, with random (distinct) hashes and
    thumbnails, and the trained model's probabilities confident in each image's own class."""
    from visionpipe.components.data_quality.embed import Embedded

    x, y = blobs(seed, per_class=len(splits) // len(CLASSES))
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    probabilities = np.full((len(y), len(CLASSES)), 0.02, np.float32)
    probabilities[np.arange(len(y)), y] = 0.94
    split_array = np.array(splits)
    index = np.zeros(len(y), np.int64)
    for split in set(splits):
        index[split_array == split] = np.arange((split_array == split).sum())
    return Embedded(
        embeddings=x,
        probabilities=probabilities,
        labels=y.astype(np.int64),
        splits=split_array,
        sources=[f"/data/{CLASSES[label]}/{i}.jpg" for i, label in enumerate(y)],
        index_in_split=index,
        hashes=rng.integers(0, 2**63, len(y), dtype=np.int64).view(np.uint64),
        thumbnails=np.stack([photo(seed * 1000 + i, THUMBNAIL, THUMBNAIL).mean(axis=2) for i in range(len(y))]).astype(
            np.uint8
        ),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_label_errors_are_found_and_nothing_else(seed):
    x, y = blobs(seed)
    rng = np.random.default_rng(100 + seed)
    flipped = rng.choice(len(y), 8, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + 1) % len(CLASSES)
    probabilities, folds = out_of_sample_probabilities(x, noisy, len(CLASSES), 5, seed)
    issues = label_issues(noisy, probabilities)
    found = {issue.index for issue in issues}
    assert folds == 5
    assert found == set(flipped.tolist())  # every flip, and no clean image
    for issue in issues:
        assert issue.given == noisy[issue.index] and issue.suggested == y[issue.index] and issue.score < 0.5
    assert [i.score for i in issues] == sorted(i.score for i in issues)  # most likely wrong first


def test_a_confident_model_on_a_small_split_still_flags_a_photo_it_calls_another_class():
    """Plain confident learning would not: the threshold of class 1 is the mean confidence of
    the images labelled 1 (0.998 here), above the 0.993 the model gives the mislabelled one."""
    labels = np.array([0] * 5 + [1] * 4 + [2] * 4)
    probabilities = np.full((len(labels), 3), 0.001, np.float32)
    probabilities[np.arange(len(labels)), labels] = 0.998
    probabilities[4] = (0.002, 0.993, 0.005)  # labelled 0, looks like 1
    assert [(i.index, i.given, i.suggested) for i in label_issues(labels, probabilities)] == [(4, 0, 1)]


def test_clean_data_has_no_finding():
    data = embedded(3)
    labelled, checks = _label_findings(data, CLASSES, DataQualityConfig(), seed=0)
    assert labelled == []
    assert checks["train"].startswith("cross-validated") and checks["test"] == "the trained model"
    assert _neighbour_findings(normalized_data(data), CLASSES, DataQualityConfig())[0] == []


def _copy(data, copy: int, of: int, rng) -> None:
    """Make image ``copy`` a copy of image ``of``: nearly the same embedding, the same label."""
    data.embeddings[copy] = data.embeddings[of] + rng.normal(0, 0.01, data.embeddings.shape[1])
    data.labels[copy] = data.labels[of]


def test_planted_copy_across_splits_is_leakage_and_within_a_split_a_duplicate():
    data = embedded(4)
    rng = np.random.default_rng(5)
    test_row, train_row, other_train, look_alike = 230, 7, 11, 40
    # A resized copy in test of a train photo: its pixels and hash nearly the original's.
    _copy(data, test_row, train_row, rng)
    data.thumbnails[test_row] = np.clip(data.thumbnails[train_row] + rng.normal(0, 3, (THUMBNAIL,) * 2), 0, 255)
    data.hashes[test_row] = data.hashes[train_row] ^ np.uint64(0b101)
    # A copy inside train.
    _copy(data, other_train, 12, rng)
    data.thumbnails[other_train], data.hashes[other_train] = data.thumbnails[12], data.hashes[12]
    # The model embeds two different photos alike, or their hashes collide (dark or plain
    # photos): their pixels tell them apart, no pair.
    _copy(data, look_alike, 41, rng)
    unlike = np.flatnonzero(data.labels != data.labels[20])[-1]
    data.hashes[unlike] = data.hashes[20]
    found, rule = _neighbour_findings(normalized_data(data), CLASSES, DataQualityConfig())
    assert rule["max_hash_distance"] == 5  # random hashes: the configured limit
    kinds = {(f["kind"], f["path"], f["other_path"]) for f in found}
    assert kinds == {
        (DataQuality.LEAKAGE, data.sources[train_row], data.sources[test_row]),
        (DataQuality.DUPLICATE, data.sources[other_train], data.sources[12]),
    }
    leak = next(f for f in found if f["kind"] == DataQuality.LEAKAGE)
    assert (leak["split"], leak["other_split"], leak["hash_distance"]) == ("train", "test", 2)
    assert leak["cosine"] > 0.99 and leak["pixel_correlation"] > 0.99 and leak["score"] == leak["pixel_correlation"]


def test_the_pixel_comparison_stops_at_the_deadline_with_the_most_alike_pairs_compared():
    from visionpipe.components.data_quality.alignment import CHUNK

    data = embedded(4)
    rng = np.random.default_rng(5)
    test_row, train_row = 230, 7
    _copy(data, test_row, train_row, rng)
    data.thumbnails[test_row] = data.thumbnails[train_row]
    # A loose cosine limit proposes most neighbours: more pairs than one chunk of the comparison.
    loose = DataQualityConfig(min_cosine=0.5)
    found, rule = _neighbour_findings(normalized_data(data), CLASSES, loose)
    assert rule["pairs_compared"] == rule["pairs_proposed"] > CHUNK
    everything = {(f["kind"], f["path"], f["other_path"]) for f in found}
    # A deadline already past: one chunk runs, of the pairs whose embeddings are most alike,
    # which hold the copy.
    found, rule = _neighbour_findings(data, CLASSES, loose, deadline=time.monotonic() - 1)
    assert rule["pairs_compared"] == CHUNK < rule["pairs_proposed"]
    leaks = {(f["path"], f["other_path"]) for f in found if f["kind"] == DataQuality.LEAKAGE}
    assert leaks == {(data.sources[train_row], data.sources[test_row])}
    assert {(f["kind"], f["path"], f["other_path"]) for f in found} <= everything
    # The console and the report say that the comparison stopped, and how to compare them all.
    summary = {"near_duplicate_rule": rule, "training_seconds": 12.0, "counts": files.counts(found),
               "leaked_share": 0.05, "anomalies": [], "label_checks": {}, "images": 240, "seconds": 1.0}  # fmt: skip
    said = (
        f"near-duplicates: {CHUNK} of the {rule['pairs_proposed']:,} proposed pairs compared by their pixels, "
        "the most alike embeddings first, before the stage reached data_quality.max_training_share of the 12 s "
        "the model trained; raise it to compare them all"
    )
    assert said in executor._notes(summary)
    assert f" N{said[1:]}." in summary_line(summary)


def normalized_data(data):
    """``data`` with its embeddings centred and unit-length, as the executor hands them on."""
    data.embeddings = normalized(data.embeddings)
    return data


def test_an_image_far_from_every_other_is_the_outlier():
    x, _ = blobs(6)
    x[17] = x.mean(axis=0) + 40.0  # nowhere near any cluster
    neighbours = nearest(normalized(x), 10)
    found = outliers(outlier_scores(neighbours), 6.0, 20)
    assert [index for index, _ in found] == [17]


def test_nearest_is_blockwise_exact():
    x, _ = blobs(7, per_class=10)
    unit = normalized(x)
    got = nearest(unit, 3)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    np.testing.assert_array_equal(got.indices, np.argsort(-similarity, axis=1)[:, :3])


def test_candidates_are_close_neighbours_and_hash_matches_each_once():
    x, _ = blobs(8, per_class=5)
    unit = normalized(x)[[0, 5, 10, 15]]  # one image of each class: embeddings far apart
    unit[1] = unit[0]  # 0 and 1 agree in embedding and hash
    hashes = np.array([0, 0b11, 2**40 - 1, 2**63 - 1], np.uint64)
    neighbours = nearest(unit, 2)
    assert candidates(hashes, neighbours, 0.9, 2).tolist() == [[0, 1]]
    hashes[3] = hashes[2] ^ np.uint64(1)  # embeddings far apart, hashes 1 bit apart: compare the pixels
    assert candidates(hashes, neighbours, 0.9, 2).tolist() == [[0, 1], [2, 3]]
    assert candidates(hashes, neighbours, 0.9, -1).tolist() == [[0, 1]]  # the hash tells nothing here


def test_hashes_that_collide_everywhere_tell_nothing():
    rng = np.random.default_rng(10)
    assert hash_limit(rng.integers(0, 2**63, 200, dtype=np.int64).view(np.uint64), 5) == 5
    plain = np.repeat(rng.integers(0, 2**63, 20, dtype=np.int64).view(np.uint64), 10)  # digits: hash twins
    plain[::7] ^= np.uint64(1)
    assert hash_limit(plain, 5) == -1


def test_a_class_with_one_train_image_is_reported_not_checked():
    data = embedded(9)
    lone = np.flatnonzero(data.splits == "train")[0]
    data.labels[data.labels == 3] = 2
    data.labels[lone] = 3
    _, checks = _label_findings(data, CLASSES, DataQualityConfig(), seed=0)
    assert checks["train"].startswith("not checked: class id 3 has a single train image")


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_cosine", 0.1),
        ("max_hash_distance", 40),
        ("folds", 1),
        ("outlier_min_zscore", 0.0),
        ("min_pixel_correlation", 0.5),
    ],
)
def test_thresholds_that_would_let_anything_pass_are_refused(field, value):
    with pytest.raises(ConfigError, match=f"data_quality.{field}"):
        DataQualityConfig(**{field: value})


def _registry_params():
    from tests.models.test_registry import HEAVY
    from visionpipe.models.registry import model_names

    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in model_names()]


@pytest.mark.parametrize("name", _registry_params())
def test_every_registered_model_gives_penultimate_embeddings(name, tmp_path):
    """After a save and load, as the stage reads the trained model: the embedding is the input of
    the classification head, and the second output is exactly the model's prediction."""
    import keras

    from tests.models.test_registry import SMALL, SPEC
    from visionpipe.components.data_quality.embed import classification_head, embedding_model
    from visionpipe.models.classifier import build_classifier
    from visionpipe.models.config import ModelConfig
    from visionpipe.models.layers import custom_layers
    from visionpipe.models.registry import check_args

    built = build_classifier(SPEC, 3, ModelConfig(name=name, args=check_args(name, SMALL.get(name, {}))))
    built.save(tmp_path / "model.keras")
    custom_layers(keras)
    model = keras.models.load_model(tmp_path / "model.keras", compile=False)
    images = np.random.default_rng(0).random((2, *SPEC.input_shape), np.float32)
    features, probabilities = embedding_model(model, 3).predict_on_batch(images)
    _, head = classification_head(model, 3)
    assert features.shape == (2, head.kernel.shape[0])
    np.testing.assert_allclose(probabilities, model.predict_on_batch(images), atol=1e-5)


def _leak(index: int) -> dict:
    return {"kind": DataQuality.LEAKAGE, "other_split": "test", "other_index": index}


@pytest.mark.parametrize("severity", ["block", "warn"])
def test_copies_of_too_many_test_images_are_the_leakage_anomaly_with_its_severity(severity):
    params = Params(data_quality=DataQualityConfig(), seed=0, leakage_severity=severity)
    splits = {"train": 200, "val": 20, "test": 20}
    # 3 of 40 val/test images copied (7.5% > 5%); two pairs name one test image.
    found = [_leak(1), _leak(1), _leak(2), _leak(3)]
    share, anomalies = _leakage_anomaly(found, splits, params)
    assert share == 0.075 and [a["severity"] for a in anomalies] == [severity]
    assert anomalies[0]["description"].startswith("3 of the 40 val/test images (7.5%")
    reason = DataQuality("/tmp/x", {"anomalies": anomalies}).blocking_reason()
    assert (reason is not None) == (severity == "block")
    # Two copies are 5%: not above the share, so findings only.
    assert _leakage_anomaly(found[:3], splits, params) == (0.05, [])


def test_a_blocking_data_quality_anomaly_refuses_export_and_none_leaves_the_blessing_to_decide():
    from visionpipe.components.export.spec import SPEC, Inputs
    from visionpipe.pipeline.artifacts import Blessing, Evaluation, Examples, Model

    blessed = Blessing("/tmp/b", {"verdict": "BLESSED", "blessed": True})
    blocking = DataQuality("/tmp/q", {"anomalies": [{"kind": DataQuality.LEAKAGE, "severity": "block",
                                                     "description": "3 of the 40 val/test images"}]})  # fmt: skip
    warning = DataQuality("/tmp/q", {"anomalies": [{**blocking.anomalies[0], "severity": "warn"}]})
    common = {
        "model": Model("/tmp/m"),
        "blessing": blessed,
        "evaluation": Evaluation("/tmp/e"),
        "examples": Examples("/tmp/x"),
    }
    assert SPEC.gate is not None
    assert "3 of the 40 val/test images" in (SPEC.gate(Inputs(**common, data_quality=blocking)) or "")
    assert SPEC.gate(Inputs(**common, data_quality=warning)) is None
    assert SPEC.gate(Inputs(**common, data_quality=None)) is None


def _encoded(pixels: np.ndarray, quality: int | None = None) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    if quality:
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    else:
        Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def photo(seed: int, height: int = 240, width: int = 320) -> np.ndarray:
    """A photo-like image: smooth shapes (a low-resolution random field blown up) with grain."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(field).resize((width, height), Image.BICUBIC), np.float32)
    return np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)


def thumbnail(pixels: np.ndarray, quality: int | None = None) -> np.ndarray:
    from visionpipe.components.data_quality.embed import hash_and_thumbnail

    return hash_and_thumbnail(_encoded(pixels, quality))[1].numpy()


def test_copies_resized_recompressed_cropped_or_mirrored_align_and_other_photos_do_not():
    from PIL import Image

    original = photo(1)
    copies = {
        "resized to half": np.asarray(Image.fromarray(original).resize((160, 120), Image.BILINEAR)),
        "recompressed": original,  # as JPEG quality 30, below
        "centre crop 90%": original[12:228, 16:304],
        "corner crop 92%": original[:221, 26:],
        "crop 85% off centre": original[20:224, 10:282],
        "mirrored": original[:, ::-1],
        "brighter": np.clip(original.astype(np.int16) * 1.2 + 20, 0, 255).astype(np.uint8),
    }
    images = [thumbnail(original)]
    images += [thumbnail(copy, 30 if name == "recompressed" else None) for name, copy in copies.items()]
    images += [thumbnail(photo(seed)) for seed in range(2, 12)]
    others = len(images) - 1
    score = aligned_correlation(np.stack(images), np.zeros(others, int), np.arange(1, others + 1))
    found = dict(zip(copies, np.round(score[: len(copies)], 3), strict=True))
    assert all(s >= DataQualityConfig().min_pixel_correlation for s in found.values()), str(found)
    assert score[len(copies) :].max() < 0.9, score  # ten unrelated photos
    # Either image may be the cropped one: the order of the pair does not matter.
    backwards = aligned_correlation(np.stack(images), np.arange(1, len(copies) + 1), np.zeros(len(copies), int))
    np.testing.assert_allclose(backwards, score[: len(copies)], atol=1e-3)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("fit_seconds, over", [(10.0, True), (1000.0, False), (None, False)])
def test_the_stage_stops_early_when_its_projected_cost_is_over_its_share_of_training(monkeypatch, fit_seconds, over):
    from visionpipe.components.data_quality import cost

    clock = _Clock()
    monkeypatch.setattr(cost.time, "monotonic", clock)
    budget = cost.Budget(None, total_images=1000, fit_seconds=fit_seconds, share=0.5)
    for _ in range(2):  # too early to project: fewer than MIN_BATCHES
        clock.now += 3.0
        budget.advance(100)
    clock.now += 3.0
    if not over:
        budget.advance(100)  # 9 s for 300 of 1000 images: 30 s for the pass
        return
    projected = round(30 * cost.WHOLE_STAGE_PER_EMBEDDING)
    with pytest.raises(
        cost.OverBudget, match=rf"projected cost, {projected} s \(from 300 of 1,000 images embedded in 9 s\)"
    ):
        budget.advance(100)


def test_the_budget_decides_once():
    from visionpipe.components.data_quality import cost

    budget = cost.Budget(None, total_images=10**6, fit_seconds=1e9, share=0.5)
    budget.started -= 2 * cost.MIN_SECONDS
    for _ in range(cost.MIN_BATCHES):
        budget.advance(1)
    assert budget.decided
    budget.fit = 1e-9  # however the projection would now come out, the stage is already running
    budget.advance(1)
