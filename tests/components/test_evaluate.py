"""Unit tests of evaluate's parts: intervals, calibration, corruptions, slices, Grad-CAM, the gate."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from visionpipe.components.common import calibration
from visionpipe.components.evaluate import bootstrap, gate
from visionpipe.components.evaluate.config import (
    CORRUPTIONS,
    BaselineConfig,
    EvaluateConfig,
    SliceConfig,
    ThresholdConfig,
)
from visionpipe.components.evaluate.data import EvalSplit, InMemory
from visionpipe.components.evaluate.gradcam import heat_maps
from visionpipe.components.evaluate.gradcam import summary as gradcam_summary
from visionpipe.components.evaluate.metrics import classification_metrics, most_confused_pairs
from visionpipe.components.evaluate.robustness import CORRUPTION_FUNCTIONS, corrupt, gaussian_blur, robustness
from visionpipe.components.evaluate.slices import size_bucket, slice_table, source_folder
from visionpipe.pipeline.checks import Outcome


def _noisy_predictions(n: int, classes: int, correct_share: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    predicted = np.where(rng.random(n) < correct_share, labels, (labels + 1) % classes)
    return labels, predicted


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_images():
    widths = []
    for n in (200, 5000):
        labels, predicted = _noisy_predictions(n, 5, 0.8)
        found = bootstrap.confidence_intervals(labels, predicted, 5, resamples=500, seed=1)
        low, high = found["accuracy"]
        assert low < np.mean(labels == predicted) < high
        assert found["macro_f1"][0] < found["macro_f1"][1]
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(n): 5x narrower for 25x the images


def test_bootstrap_draws_in_chunks_give_the_intervals_of_one_draw(monkeypatch):
    labels, predicted = _noisy_predictions(3000, 4, 0.7)
    other = np.where(np.random.default_rng(5).random(3000) < 0.2, labels, predicted)
    whole = np.random.default_rng(1).integers(0, 3000, size=(300, 3000))  # every resample in one matrix
    expected = {
        name: bootstrap.interval(score(labels, predicted, whole, 4)) for name, score in bootstrap.SCORES.items()
    }
    monkeypatch.setattr(bootstrap, "CHUNK_DRAWS", 3000 * 7)  # 7 resamples a chunk, the last one short
    assert len(list(bootstrap._resample_indices(3000, 300, 1))) == 43
    assert bootstrap.confidence_intervals(labels, predicted, 4, resamples=300, seed=1) == expected
    paired = bootstrap.accuracy_scores(labels, predicted, whole) - bootstrap.accuracy_scores(labels, other, whole)
    found = bootstrap.difference_interval("accuracy", labels, predicted, other, 4, 300, seed=1)
    assert found == bootstrap.interval(paired)


def test_bootstrap_macro_f1_of_the_whole_split_matches_scikit_learn():
    labels, predicted = _noisy_predictions(1000, 4, 0.7)
    whole = np.arange(1000)[None]
    probabilities = np.eye(4)[predicted]
    expected = classification_metrics(labels, probabilities, ["a", "b", "c", "d"], top_k=2)["macro_f1"]
    assert bootstrap.macro_f1_scores(labels, predicted, whole, 4)[0] == pytest.approx(expected)


def test_difference_interval_is_paired_and_signed():
    labels, better = _noisy_predictions(2000, 3, 0.9, seed=3)
    worse = np.where(np.random.default_rng(4).random(2000) < 0.3, (labels + 1) % 3, better)
    low, high = bootstrap.difference_interval("accuracy", labels, worse, better, 3, 500, seed=0)
    assert high < 0  # the worse model is significantly worse
    low, high = bootstrap.difference_interval("accuracy", labels, better, better, 3, 500, seed=0)
    assert low == high == 0


def test_temperature_scaling_recovers_the_temperature_and_lowers_ece():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 10)) * 4
    labels = np.array([rng.choice(10, p=special.softmax(z / 2.5)) for z in logits])  # true T = 2.5
    overconfident = special.softmax(logits, axis=1)
    temperature = calibration.fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(2.5, rel=0.1)
    before = calibration.reliability(overconfident, labels, 15)["ece"]
    after = calibration.reliability(calibration.with_temperature(overconfident, temperature), labels, 15)
    assert after["ece"] < before / 4
    assert sum(b["images"] for b in after["bins"]) == 4000
    # Temperature never changes the winner.
    assert np.array_equal(calibration.with_temperature(overconfident, temperature).argmax(1), overconfident.argmax(1))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_gets_stronger_with_severity_and_keeps_8_bit_images(name):
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)) / 255.0, tf.float32)
    changes = []
    for severity in range(3):
        out = corrupt(images, name, severity, seed=0).numpy()
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
        assert np.allclose(out * 255, np.round(out * 255), atol=1e-4)
        changes.append(np.abs(out - images.numpy()).mean())
    assert 0 < changes[0] < changes[1] < changes[2], changes


def _grating(side: int, cycles: int = 4) -> tf.Tensor:
    """Vertical stripes with ``cycles`` periods across the image, at ``side`` x ``side`` px."""
    x = (np.arange(side) + 0.5) / side
    row = np.round((0.5 + 0.4 * np.sin(2 * np.pi * cycles * x)) * 255) / 255
    return tf.constant(np.broadcast_to(row[None, None, :, None], (1, side, side, 1)), tf.float32)


def _contrast_lost(blurred: tf.Tensor, image: tf.Tensor) -> float:
    return 1 - float(tf.math.reduce_std(blurred) / tf.math.reduce_std(image))


@pytest.mark.parametrize("severity", [0, 1, 2])
def test_a_blur_severity_does_the_same_damage_to_the_same_pattern_at_any_image_size(severity):
    small, large = _grating(32), _grating(128)
    lost = [_contrast_lost(corrupt(image, "blur", severity, seed=0), image) for image in (small, large)]
    assert lost[1] > 0.01 and lost[0] == pytest.approx(lost[1], abs=0.02), lost
    # A sigma in pixels (the definition before) blurs the small image's stripes far more.
    sigma = (0.5, 1.0, 2.0)[severity]
    fixed = [_contrast_lost(gaussian_blur(image, sigma), image) for image in (small, large)]
    assert fixed[0] > 4 * fixed[1], fixed


def test_downscale_divides_the_resolution_by_the_same_factor_at_any_size():
    found = {side: [CORRUPTION_FUNCTIONS["downscale"].at_size(f, side, side) for f in (2, 3, 4)] for side in (28, 224)}
    assert found == {28: ["14x14 px", "9x9 px", "7x7 px"], 224: ["112x112 px", "75x75 px", "56x56 px"]}


def test_the_config_lists_the_corruptions_robustness_implements():
    assert tuple(CORRUPTION_FUNCTIONS) == CORRUPTIONS


def _split(images: np.ndarray, labels: np.ndarray, sources=None, sizes=None, modes=None) -> EvalSplit:
    n = len(labels)
    sizes = sizes if sizes is not None else [(32, 32)] * n
    return EvalSplit(
        pixels=InMemory(images),
        labels=labels,
        sources=sources or [f"/data/c{label}/{i}.png" for i, label in enumerate(labels)],
        heights=np.array([h for h, _ in sizes]),
        widths=np.array([w for _, w in sizes]),
        modes=modes or ["RGB"] * n,
        image_size=images.shape[1:3],
    )


def _brightness_model():
    """Class 1 when the image's mean is above 0.5: fragile to brightness, indifferent to blur."""
    images = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(images)
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[-40.0, 40.0]]),
                                bias_initializer=keras.initializers.Constant([20.0, -20.0]))(mean)  # fmt: skip
    return keras.Model(images, keras.layers.Activation("softmax")(logits))


def test_robustness_measures_what_each_corruption_does_to_the_model():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    images = np.where(labels[:, None, None, None] == 1, 160, 90) + rng.integers(-10, 10, (64, 8, 8, 1))
    split = _split(images.astype(np.uint8), labels)
    result = robustness(_brightness_model(), split, np.arange(64), ("blur", "brightness"), (0.01,), seed=0)
    assert result["clean_accuracy"] == 1.0
    assert result["corruptions"]["blur"]["drop_at_strongest"] == 0.0
    assert result["corruptions"]["brightness"]["drop_at_strongest"] == pytest.approx(0.5, abs=0.1)  # class 0 flips
    assert result["fgsm"][0]["accuracy"] == 1.0  # 0.01 cannot move a mean that is 0.14 from the boundary


def test_source_folder_and_size_bucket():
    assert source_folder("/photos/dog/indoor/1.jpg", "dog") == "dog/indoor"
    assert source_folder("/photos/dog/1.jpg", "dog") is None
    assert source_folder("row 17", "dog") is None
    assert size_bucket(48, 300) == "short side <= 64 px"
    assert size_bucket(600, 800) == "short side > 512 px"


def test_slices_flag_only_large_enough_slices_far_below_overall():
    labels = np.zeros(100, dtype=int)
    correct = np.ones(100, dtype=bool)
    correct[:30] = False  # all 30 grayscale images wrong
    correct[99] = False  # the one tiny image wrong
    modes = ["L"] * 30 + ["RGB"] * 70
    sizes = [(32, 32)] * 99 + [(20, 20)]
    split = _split(np.zeros((100, 1, 1, 1), np.uint8), labels, modes=modes, sizes=sizes)
    table = slice_table(correct, split, ["c0"], SliceConfig(max_gap=0.1, min_images=20))
    flagged = {(s["feature"], s["slice"]) for s in table["slices"] if s["flagged"]}
    assert flagged == {("colour mode", "L")}  # the 1-image size slice is listed, never flagged
    assert {"class", "source folder"} <= set(table["uniform"])


def test_most_confused_pairs_come_from_the_off_diagonal():
    pairs = most_confused_pairs([[5, 3, 0], [1, 9, 0], [0, 4, 2]], ["a", "b", "c"])
    assert [(p["true"], p["predicted"], p["images"]) for p in pairs] == [("c", "b", 4), ("a", "b", 3), ("b", "a", 1)]


def _feature_map_model(head=(2.0, 0.0, -1.0), bias=(0.0, 0.0, 0.0)):
    """A conv feature map whose right half is masked out: Grad-CAM must put no heat there. Every
    weight is set, nothing drawn: the features copy the image, and ``head`` weighs their mean
    into the three classes' logits (with ``bias``)."""
    images = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(4, 1, activation="relu", name="features", kernel_initializer="ones")(images)
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[:, :, :4] = 1
    masked = keras.layers.Rescaling(mask, name="left_half")(features)
    pooled = keras.layers.GlobalAveragePooling2D()(masked)
    dense = keras.layers.Dense(3, name="probabilities", activation="softmax",
                               kernel_initializer=keras.initializers.Constant([list(head)] * 4),
                               bias_initializer=keras.initializers.Constant(list(bias)))  # fmt: skip
    network = keras.Model(images, dense(pooled))
    outer = keras.Input((8, 8, 1))
    return keras.Model(outer, network(outer))


def test_grad_cam_heat_lies_where_the_features_drive_the_prediction():
    images = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    heat, methods = heat_maps(_feature_map_model(), images)
    assert methods == ["Grad-CAM on layer 'left_half'"] * 3
    assert heat.shape == (3, 8, 8) and heat.min() >= 0 and heat.max() <= 1
    assert heat[:, :, :3].mean() > 10 * heat[:, :, 5:].mean()


def test_an_empty_grad_cam_map_falls_back_to_saliency_and_says_so():
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    # Class 0 wins by its bias and loses score as the features grow: every weighted feature is
    # negative, so Grad-CAM's ReLU leaves nothing.
    heat, methods = heat_maps(_feature_map_model(head=(-1.0, 0.0, 0.0), bias=(5.0, 0.0, 0.0)), images)
    assert all(m.startswith("input-gradient saliency (Grad-CAM on layer 'left_half' was all zero") for m in methods)
    assert heat.max() == pytest.approx(1.0)  # a real map, not a blank one
    assert heat[:, :, :4].mean() > 0 and heat[:, :, 4:].max() == 0  # the masked half moves nothing
    assert gradcam_summary(methods) == methods[0]
    mixed = gradcam_summary(["Grad-CAM on layer 'x'"] * 3 + methods[:1])
    assert mixed.startswith("Grad-CAM on layer 'x'; 1 of 4 images: input-gradient saliency")


def _result(accuracy=0.9, recalls=(0.9, 0.2), ece=0.05, drops=None):
    classes = [f"c{i}" for i in range(len(recalls))]
    result = {
        "accuracy": accuracy,
        "balanced_accuracy": float(np.mean(recalls)),
        "classes": classes,
        "per_class": {c: {"recall": r} for c, r in zip(classes, recalls, strict=True)},
        "calibration": {"ece_served": ece},
    }
    if drops is not None:
        result["robustness"] = {"corruptions": {n: {"drop_at_strongest": d} for n, d in drops.items()}}
    return result


def test_absolute_checks_record_value_threshold_and_verdict():
    config = EvaluateConfig(
        thresholds=ThresholdConfig(
            min_accuracy=0.95, min_class_recall=0.5, max_ece=0.1, max_corruption_drop={"blur": 0.1, "jpeg": 0.1}
        )  # fmt: skip
    )
    checks = {c.name: c for c in gate.absolute_checks(_result(drops={"blur": 0.3}), config)}
    assert checks["accuracy"].outcome == Outcome.FAILED and checks["accuracy"].threshold == 0.95
    assert "0.9000 < evaluate.thresholds.min_accuracy 0.95" in checks["accuracy"].detail
    assert checks["recall of class 'c1' (the lowest)"].outcome == Outcome.FAILED
    assert checks["ECE"].outcome == Outcome.PASSED
    assert checks["accuracy drop under blur (strongest)"].outcome == Outcome.FAILED
    assert checks["accuracy drop under jpeg (strongest)"].outcome == Outcome.NOT_CHECKED
    assert checks["top-k accuracy"].outcome == Outcome.NOT_SET  # not set (and two classes: no top-k)
    assert checks["balanced accuracy"].outcome == Outcome.NOT_SET and checks["balanced accuracy"].value == 0.55
    blessing = gate.blessing(list(checks.values()), "model-uri")
    assert blessing["verdict"] == "NOT BLESSED" and not blessing["blessed"] and len(blessing["reasons"]) == 3
    assert len(blessing["not_checked"]) == 1
    assert blessing["not_set"] == [f"evaluate.thresholds.{k}" for k in ("min_balanced_accuracy", "min_top_k_accuracy")]


@pytest.mark.parametrize(
    ("difference", "interval", "significant_only", "verdict"),
    [
        (-0.02, [-0.04, -0.005], False, Outcome.FAILED),
        (-0.02, [-0.04, 0.001], True, Outcome.PASSED),  # not significant: the interval reaches 0
        (-0.02, [-0.04, -0.005], True, Outcome.FAILED),
        (0.01, [-0.01, 0.03], False, Outcome.PASSED),
    ],
)
def test_baseline_check_compares_with_the_served_model(difference, interval, significant_only, verdict):
    comparison = {"version": 3, "candidate": 0.8 + difference, "baseline": 0.8, "difference": difference,
                  "difference_interval": interval}  # fmt: skip
    config = EvaluateConfig(baseline=BaselineConfig(max_drop=0.0, significant_only=significant_only))
    check = gate.baseline_check(comparison, config)
    assert check.outcome == verdict and check.value == difference
    assert "served version 3" in check.detail


def test_first_model_is_gated_on_thresholds_only():
    check = gate.baseline_check(None, EvaluateConfig())
    assert check.outcome == Outcome.NOT_CHECKED and "no model has been pushed yet" in check.detail


def test_the_served_model_is_the_stable_label_else_the_newest_version(tmp_path):
    from visionpipe.components.evaluate.baseline import served_model
    from visionpipe.serving import tf_serving_config

    assert served_model(tmp_path, "m") is None  # nothing pushed: the first model
    for version in (1, 2, 3):
        (tmp_path / "m" / str(version)).mkdir(parents=True)
        (tmp_path / "m" / str(version) / "saved_model.pb").write_bytes(b"")
    (tmp_path / "m" / "4").mkdir()  # a version folder without a SavedModel is not served
    assert served_model(tmp_path, "m").version == 3
    entry = tf_serving_config.ModelEntry("m", str(tmp_path / "m"), (2, 3), {"stable": 2, "canary": 3})
    tf_serving_config.write_text_proto(tmp_path / "models.config", tf_serving_config.model_server_config([entry]))
    assert served_model(tmp_path, "m").version == 2


def _records(folder, count: int, size: int = 12):
    """``count`` PNG records in the ingest format (with origin), 3 shards of the test split."""
    from visionpipe.data import record_format

    (folder / "test").mkdir(parents=True)
    writers = [tf.io.TFRecordWriter(str(folder / "test" / f"data-{i:05d}-of-00003.tfrecord")) for i in range(3)]
    for i in range(count):
        pixels = np.full((size, size, 3), i % 256, np.uint8)
        record = record_format.Record(
            tf.io.encode_png(pixels).numpy(),
            i % 3,
            f"c{i % 3}",
            f"/data/{i}.png",
            "",
            "PNG",
            "RGB",
            size,
            size,
            3,
            False,
        )
        writers[i * 3 // count].write(record_format.serialize(record))  # in order: shard 0 holds the first third
    for writer in writers:
        writer.close()
    return folder


def test_a_split_too_big_to_hold_is_read_from_its_records_pass_by_pass(tmp_path, monkeypatch):
    from visionpipe.components.evaluate import data as eval_data
    from visionpipe.models.preprocessing import PreprocessingSpec

    spec = PreprocessingSpec(height=8, width=8, channels=3, resize_policy="stretch", mean=(0.5,) * 3, std=(0.25,) * 3)
    examples = _records(tmp_path, 90)
    held = eval_data.load_split(examples, "test", spec)
    monkeypatch.setattr(eval_data, "IN_MEMORY_BYTES", 90 * 8 * 8 * 3 - 1)  # one byte short of holding it
    streamed = eval_data.load_split(examples, "test", spec)
    assert isinstance(held.pixels, InMemory) and isinstance(streamed.pixels, eval_data.FromRecords)
    assert streamed.sources == held.sources and sorted(held.sources) == sorted(f"/data/{i}.png" for i in range(90))
    for indices in (None, np.arange(5, 80, 3), np.array([70, 2, 41, 2])):  # all, a sorted sample, a gallery's order
        both = [list(split.batches(16, indices)) for split in (held, streamed)]
        assert [len(x) for x, _ in both[0]] == [len(x) for x, _ in both[1]]
        for (x_held, y_held), (x_streamed, y_streamed) in zip(*both, strict=True):
            np.testing.assert_array_equal(x_held.numpy(), x_streamed.numpy())
            np.testing.assert_array_equal(y_held, y_streamed)
    first = np.concatenate([x.numpy() for x, _ in streamed.batches(16, np.array([70, 2, 41, 2]))])
    made_from = [int(held.sources[i].split("/")[-1].split(".")[0]) for i in (70, 2, 41, 2)]
    np.testing.assert_allclose(first[:, 0, 0, 0], np.array(made_from) / 255, atol=1e-6)  # in the order asked
    encoded = list(streamed.encoded_batches(32))
    assert [len(b) for b, _ in encoded] == [32, 32, 26]
    np.testing.assert_array_equal(np.concatenate([y for _, y in encoded]), held.labels)
