"""recipe auto's rules (components/train/auto.py) and its epoch fitting (budget.py), without training."""

from __future__ import annotations

import dataclasses
import json

import pytest

from visionpipe.components.train import auto, budget
from visionpipe.components.train.spec import params_of
from visionpipe.config import load_config
from visionpipe.pipeline.artifacts import Examples, Statistics
from visionpipe.pipeline.errors import UserError

OFFLINE = lambda name, args, size: ("unavailable", "weights.h5 is not in /cache and cannot be downloaded")  # noqa: E731
CACHED = lambda name, args, size: ("cached", f"/cache/{name}_{size}.h5")  # noqa: E731


def facts(train=200, classes=2, side=(240, 300), gray=0.0, same_size=False, val=80) -> auto.DataFacts:
    per_class = [train // classes] * classes
    per_class[0] += train - sum(per_class)
    height, width = side
    return auto.DataFacts(train, val, tuple(per_class), height, width, same_size, gray)


def params(*overrides: str, budget_minutes: float | None = None):
    extra = [f"train.time_budget_minutes={budget_minutes}"] if budget_minutes is not None else []
    return params_of(load_config(overrides=["recipe=auto", *overrides, *extra]))


def test_few_photos_train_from_scratch_offline_with_strong_augmentation_and_many_epochs():
    choice = auto.choose(facts(train=200), params(), OFFLINE)
    v = choice.values
    assert v["model.name"] == "resnet9" and v["model.weights"] == "none"
    assert v["preprocessing.channels"] == 3 and v["preprocessing.resize_policy"] == "crop"
    assert [getattr(op, "op", op) if not isinstance(op, dict) else op["op"] for op in v["train.augment.policy"]] == [
        "random_resized_crop",
        "flip_horizontal",
        "color_jitter",
    ]
    assert v["train.batch_size"] == 16 and v["train.ema_epochs"] == 0.0
    assert v["train.epochs"] == auto.max_epochs(facts(train=200), transfer=False) >= 100
    assert any("no pretrained backbone" in line and "training from scratch" in line for line in choice.lines)


def test_large_photo_sets_get_a_cheaper_rung_bigger_batches_and_fewer_epochs():
    small, large = facts(train=100), facts(train=40_000, classes=10)
    few, many = auto.choose(small, params(), OFFLINE).values, auto.choose(large, params(), OFFLINE).values
    assert few["preprocessing.image_size"][0] > many["preprocessing.image_size"][0] == 64  # photos stay 64+
    assert few["model.args"]["width"] > many["model.args"]["width"]
    assert many["train.batch_size"] == 64 > few["train.batch_size"]
    assert many["train.epochs"] < few["train.epochs"]
    # No pretrained backbone for large sets, even when its weights are at hand.
    assert auto.choose(large, params(), CACHED).values["model.weights"] == "none"


def test_a_bigger_budget_affords_a_bigger_image_and_width():
    data = facts(train=500, classes=5)
    tight = auto.choose(data, params(budget_minutes=5), OFFLINE).values
    roomy = auto.choose(data, params(budget_minutes=60), OFFLINE).values
    assert roomy["preprocessing.image_size"][0] > tight["preprocessing.image_size"][0]
    assert roomy["model.args"]["width"] >= tight["model.args"]["width"]


def test_small_gray_images_of_one_size_train_in_one_channel_at_their_size_without_mirroring():
    v = auto.choose(facts(train=4000, classes=10, side=(28, 28), gray=1.0, same_size=True), params(), CACHED).values
    assert v["preprocessing.image_size"] == (28, 28) and v["preprocessing.channels"] == 1
    assert v["model.name"] == "small_cnn" and v["model.weights"] == "none"  # digits are no photos
    assert [op["op"] if isinstance(op, dict) else op for op in v["train.augment.policy"]] == ["translate"]


def test_gray_photos_train_in_one_channel_from_scratch_but_in_colour_with_a_pretrained_backbone():
    gray = facts(gray=1.0)
    assert auto.choose(gray, params(), OFFLINE).values["preprocessing.channels"] == 1
    assert "color_jitter" not in str(auto.choose(gray, params(), OFFLINE).values["train.augment.policy"])
    assert auto.choose(gray, params(), CACHED).values["preprocessing.channels"] == 3


def test_cached_imagenet_weights_make_a_pretrained_backbone_for_few_photos():
    choice = auto.choose(facts(train=200), params(), CACHED)
    v = choice.values
    assert v["model.name"] == "mobilenet_v2" and v["model.weights"] == "imagenet"
    assert v["train.finetune.head_epochs"] > 0 and v["preprocessing.channels"] == 3
    assert v["preprocessing.image_size"] in ((160, 160), (128, 128))
    assert any("pretrained mobilenet_v2" in line and "in Keras' cache" in line for line in choice.lines)


def test_the_probe_asks_for_the_size_auto_will_train_at():
    asked = []

    def probe(name, args, size):
        asked.append((name, size))
        return "unavailable", "offline"

    auto.choose(facts(train=200), params(), probe)
    assert asked == [("mobilenet_v2", 160)]
    asked.clear()
    auto.choose(facts(train=200), params("preprocessing.image_size=[128, 128]"), probe)
    assert asked == [("mobilenet_v2", 128)]


def test_settings_the_user_made_rule_out_a_pretrained_backbone_without_asking():
    for setting in ("model.weights=none", "model.name=resnet9", "preprocessing.channels=1"):
        assert auto.choose(facts(), params(setting), lambda *a: pytest.fail("probed")).values["model.weights"] == "none"


def test_imbalanced_classes_get_weighted_losses():
    data = dataclasses.replace(facts(train=90), class_counts=(60, 30))
    assert auto.choose(data, params(), OFFLINE).values["train.class_balance"] == "weights"
    assert auto.choose(facts(train=90), params(), OFFLINE).values["train.class_balance"] == "none"


def artifacts(tmp_path, train=200, side=(240, 300), gray=0):
    stats = {
        "train": {
            "count": train,
            "height": {"min": 100, "max": 400, "mean": side[0]},
            "width": {"min": 100, "max": 500, "mean": side[1]},
            "channels": {"1": gray, "3": train - gray},
        }
    }
    (tmp_path / Statistics.SUMMARY).write_text(json.dumps(stats))
    counts = {"counts": {"train": train, "val": 40, "test": 0}, "class_counts": {"a": train // 2, "b": train // 2}}
    statistics = Statistics(uri=str(tmp_path), properties=counts)
    return {"examples": Examples(uri=str(tmp_path), properties={"classes": ["a", "b"]}), "statistics": statistics}


def test_resolve_keeps_every_key_the_user_set(tmp_path, monkeypatch):
    monkeypatch.setattr("visionpipe.models.applications.imagenet_availability", OFFLINE)
    mine = params("train.batch_size=8", "model.args={width: 8}", "train.augment.policy=[flip_horizontal]")
    resolved, lines = auto.resolve(mine, artifacts(tmp_path))
    assert resolved.train.batch_size == 8 and resolved.model.args == {"width": 8}
    assert [op.op for op in resolved.train.augment.policy] == ["flip_horizontal"]
    assert resolved.model.name == "resnet9" and resolved.preprocessing.resize_policy == "crop"  # auto's
    assert resolved.train.learning_rate == pytest.approx(0.002 * (8 / 32) ** 0.5)  # follows your batch
    assert "kept as you set them: model.args, train.augment.policy, train.batch_size" in lines[-1]


def test_resolve_drops_its_model_arguments_for_a_model_the_user_chose(tmp_path, monkeypatch):
    monkeypatch.setattr("visionpipe.models.applications.imagenet_availability", OFFLINE)
    resolved, _ = auto.resolve(params("model.name=small_cnn"), artifacts(tmp_path))
    assert resolved.model.name == "small_cnn" and resolved.model.args == {}


def test_resolve_leaves_a_manual_recipe_alone(tmp_path):
    manual = params_of(load_config())
    assert auto.resolve(manual, artifacts(tmp_path)) == (manual, [])


def test_resolve_names_the_setting_that_does_not_fit_its_model(tmp_path, monkeypatch):
    monkeypatch.setattr("visionpipe.models.applications.imagenet_availability", CACHED)
    with pytest.raises(UserError, match="recipe auto with your settings: unknown argument model.args.width"):
        auto.resolve(params("model.args.width=8"), artifacts(tmp_path))


def plan(epochs=100, budget_minutes=10.0, explicit=(), head_epochs=0, train=0.5, val=0.1, steps=10, val_images=64):
    settings = [f"train.epochs={epochs}", f"train.time_budget_minutes={budget_minutes}", "train.batch_size=32"]
    if head_epochs:
        settings += ["model.name=mobilenet_v2", "model.weights=imagenet", f"train.finetune.head_epochs={head_epochs}"]
    p = dataclasses.replace(params(*settings), explicit=explicit)
    data = type("Data", (), {"steps_per_epoch": steps, "counts": {"train": steps * 32, "val": val_images}})()
    return budget.plan_epochs(p, data, budget.StepTimes(train=train, val=val, head=train / 3, startup=20.0))


def test_the_budget_caps_the_epochs_and_the_estimate_stays_within_it():
    fitted = plan(epochs=500, budget_minutes=5)
    epoch = 10 * 0.5 + 2 * 0.1 + budget.EPOCH_OVERHEAD_SECONDS
    assert fitted.epochs == int((300 - 20) // epoch) and fitted.seconds <= 300
    assert plan(epochs=500, budget_minutes=10).epochs > fitted.epochs
    assert plan(epochs=30, budget_minutes=60).epochs == 30  # no more than the data can use
    assert plan(epochs=500, budget_minutes=0.1).epochs == 1  # at least one


def test_epochs_the_user_set_are_kept_and_estimated():
    fitted = plan(epochs=500, budget_minutes=1, explicit=("train.epochs",))
    assert fitted.epochs == 500 and fitted.seconds > 60


def test_head_epochs_are_cheaper_and_come_out_of_the_budget():
    fitted = plan(epochs=500, budget_minutes=5, head_epochs=3)
    assert fitted.head_epochs == 3 and fitted.head_epoch_seconds < fitted.epoch_seconds
    assert fitted.seconds <= 300 and fitted.seconds_for(2) < fitted.seconds_for(3) < fitted.seconds_for(4)


def test_the_summary_compares_the_estimate_with_the_time_taken():
    fitted = plan(epochs=20, budget_minutes=10)
    figures, note = fitted.check(fit_seconds=fitted.seconds * 1.1, epochs_run=20)
    assert figures["estimated_seconds"] == pytest.approx(fitted.seconds, abs=0.1)
    assert "1.10x the estimate" in note and "for 20 epochs" in note
    _, stopped = fitted.check(fit_seconds=fitted.seconds_for(12), epochs_run=12)
    assert "for the 12 that ran" in stopped and "1.00x" in stopped


def test_the_probe_asks_for_the_backbone_arguments_the_user_set():
    asked = []

    def probe(name, args, size):
        asked.append(args)
        return CACHED(name, args, size)

    auto.choose(facts(), params("model.args.alpha=0.35"), probe)
    assert asked == [{"alpha": 0.35}]


def test_gray_data_measured_in_colour_normalises_in_one_channel():
    from visionpipe.models.classifier import preprocessing_spec

    gray = load_config(overrides=["preprocessing.channels=1"]).preprocessing
    spec = preprocessing_spec(gray, [0.4, 0.4, 0.4], [0.2, 0.2, 0.2])
    assert spec.mean == pytest.approx((0.4,)) and spec.std == pytest.approx((0.2,))


def test_the_tune_stage_searches_from_autos_choice(tmp_path, monkeypatch):
    from visionpipe.components.tune.spec import SPEC as TUNE

    monkeypatch.setattr("visionpipe.models.applications.imagenet_availability", OFFLINE)
    config = load_config(overrides=["recipe=auto", "tune.enabled=true", f"run.root={tmp_path}"])
    resolved, lines = TUNE.resolved(TUNE.params(config), artifacts(tmp_path))
    assert resolved.base.model.name == "resnet9" and resolved.base.preprocessing.resize_policy == "crop"
    assert any(line.startswith("auto chose:") for line in lines)


def test_training_ends_past_the_overrun_of_the_budget_and_the_summary_says_so():
    deadline = plan(epochs=20, budget_minutes=10).deadline()
    model = type("Model", (), {"stop_training": False})()
    deadline.set_model(model)
    deadline.on_epoch_end(0)
    assert not model.stop_training  # 12.5 minutes are far off
    deadline.end = 0.0  # as if they had passed
    deadline.on_epoch_end(6)
    assert model.stop_training and deadline.stopped_at == 7
    _, note = plan(epochs=20, budget_minutes=10).check(fit_seconds=800, epochs_run=7, stopped_at=7)
    assert "stopped after epoch 7, past 1.25x the budget" in note
