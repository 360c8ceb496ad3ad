"""push_version: numbered versions that appear whole and are never overwritten, warmup records
of real val images, keep-last-N pruning that spares labelled versions, and infra validation
that keeps a version which would not serve out of the base path, saying why."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tests.serving.push_fixtures import export_tiny, jpeg, make_examples, push_config
from visionpipe.components.push import executor, versions
from visionpipe.components.push.executor import InfraNotBlessed, push_version
from visionpipe.pipeline.artifacts import InfraBlessing
from visionpipe.pipeline.checks import Check, Outcome
from visionpipe.serving import infra_validation
from visionpipe.serving.tf_serving_config import MODELS_CONFIG, read_models_config
from visionpipe.serving.warmup import warmup_images, warmup_path

NAME = "visionpipe"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("export") / "1")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("examples"))


@pytest.fixture
def no_replay(monkeypatch):
    """For tests about the version folders only: the fresh-process replay (seconds) is
    replaced by a pass; the protos are still parsed and checked."""
    result = {"ok": True, "records": 4, "classes": 3, "seconds": 0.0}
    monkeypatch.setattr(infra_validation, "replay_in_fresh_process", lambda *args: result)


def push(model, examples, destination, **config):
    images = warmup_images(examples, push_config(**config).warmup_requests)
    return push_version(model, destination, NAME, images, push_config(**config), {"accuracy": 0.9})


def hidden(path):
    return sorted(p.name for p in path.rglob(".*") if p.name != versions.LOCK_FILE)


def test_versions_are_numbered_whole_and_blessed(model, examples, tmp_path):
    first = push(model, examples, tmp_path)
    second = push(model, examples, tmp_path)
    base = tmp_path / NAME
    assert (first.version, second.version) == (1, 2) and versions.versions(base) == [1, 2]
    for v in (1, 2):
        assert (base / str(v) / "saved_model.pb").is_file() and warmup_path(base / str(v)).is_file()
        record = versions.read_record(base / str(v))
        assert record["infra"]["status"] == InfraBlessing.BLESSED and record["accuracy"] == 0.9
    assert hidden(tmp_path) == [], "staging folders were left behind"
    checks = {c.name: c.outcome for c in second.verdict.checks}
    assert checks == {
        "models.config": Outcome.PASSED,
        "batching.config": Outcome.PASSED,
        "warmup file": Outcome.PASSED,
        "warmup replay": Outcome.PASSED,
        "real server": Outcome.NOT_CHECKED,  # no tensorflow_model_server or Docker daemon here
    }
    entry = read_models_config(tmp_path / MODELS_CONFIG).model_config_list.config[0]
    assert entry.base_path == str(base.resolve()) and entry.model_version_policy.latest.num_versions == 1


def test_the_version_is_invisible_until_validated_and_never_overwritten(model, examples, tmp_path, monkeypatch):
    base = tmp_path / NAME
    (base / "7").mkdir(parents=True)  # e.g. pushed by hand: the next number is above it
    shutil.copytree(model, base / "7", dirs_exist_ok=True)
    seen = []
    real_validate = infra_validation.validate

    def validate(staged, *args, **kwargs):
        seen.append((versions.versions(base), staged.version_dir.name, staged.version_dir.parent == base))
        return real_validate(staged, *args, **kwargs)

    monkeypatch.setattr(infra_validation, "validate", validate)
    monkeypatch.setattr(infra_validation, "replay_in_fresh_process", lambda *a: {"ok": True, "records": 4,
                                                                               "classes": 3, "seconds": 0})  # fmt: skip
    assert push(model, examples, tmp_path).version == 8
    assert seen[0][0] == [7] and seen[0][1].startswith(".staging-8-") and seen[0][2]
    with pytest.raises(FileExistsError, match="never overwritten"):
        staged = base / ".staging-x"
        shutil.copytree(model, staged)
        versions.publish(staged, base, 8)


def test_keep_versions_prunes_oldest(model, examples, tmp_path, no_replay):
    for _ in range(4):
        result = push(model, examples, tmp_path, keep_versions=2)
    assert versions.versions(tmp_path / NAME) == [3, 4] and result.pruned == [2]


def test_pruning_spares_labelled_versions(model, examples, tmp_path, no_replay):
    from visionpipe.components.push.promote import promote

    assert push(model, examples, tmp_path, keep_versions=1, canary=True).entry.labels == {"stable": 1}
    second = push(model, examples, tmp_path, keep_versions=1, canary=True)
    assert second.entry.labels == {"stable": 1, "canary": 2}
    assert versions.versions(tmp_path / NAME) == [1, 2], "keep_versions=1 deleted the stable version"
    promote(tmp_path, NAME, allow_unavailable=True)
    third = push(model, examples, tmp_path, keep_versions=1, canary=True)
    assert third.entry.labels == {"stable": 2, "canary": 3} and third.pruned == [1]
    assert versions.versions(tmp_path / NAME) == [2, 3]


def test_warmup_file_holds_real_val_jpegs(model, examples, tmp_path, no_replay):
    push(model, examples, tmp_path, warmup_requests=5)
    records = list(tf.data.TFRecordDataset(str(warmup_path(tmp_path / NAME / "1"))).as_numpy_iterator())
    assert len(records) == 5
    for i, record in enumerate(records):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == (NAME, "serving_default")
        tensor = request.inputs["image_bytes"]
        assert tensor.dtype == tf.string.as_datatype_enum and [d.size for d in tensor.tensor_shape.dim] == [1]
        assert tensor.string_val[0] == jpeg(100 + i)  # the val split's images, in record order
        assert tensor.string_val[0][:2] == b"\xff\xd8"


def test_warmup_count_is_capped_by_the_split_and_falls_back_to_test(tmp_path):
    assert len(warmup_images(make_examples(tmp_path / "a", val=3), 10)) == 3
    assert warmup_images(make_examples(tmp_path / "b", val=0, test=2), 10) == [jpeg(200), jpeg(201)]


def assert_nothing_pushed(destination, before_config=None):
    assert versions.versions(destination / NAME) == []
    assert hidden(destination) == [], "a staging folder was left behind"
    config = destination / MODELS_CONFIG
    assert (config.read_text() if config.exists() else None) == before_config


def test_a_model_whose_probabilities_do_not_sum_to_1_is_not_pushed(examples, tmp_path):
    bad = export_tiny(tmp_path / "bad" / "1", softmax=False)
    with pytest.raises(InfraNotBlessed) as refused:
        push(bad, examples, tmp_path / "dest")
    assert "warmup replay: warmup record 0: probabilities do not sum to 1" in str(refused.value)
    assert "nothing was pushed" in str(refused.value)
    assert_nothing_pushed(tmp_path / "dest")


def test_a_warmup_record_the_signature_cannot_decode_is_not_pushed(model, examples, tmp_path, monkeypatch):
    images = [*warmup_images(examples, 3), b"not an image"]
    with pytest.raises(InfraNotBlessed, match=r"warmup record 3: the signature failed: InvalidArgumentError"):
        push_version(model, tmp_path, NAME, images, push_config(), {})
    assert_nothing_pushed(tmp_path)


def test_a_truncated_warmup_file_is_not_pushed(model, examples, tmp_path, monkeypatch):
    write = executor.write_warmup

    def truncated(*args):
        path = write(*args)
        path.write_bytes(path.read_bytes()[:-7])
        return path

    monkeypatch.setattr(executor, "write_warmup", truncated)
    with pytest.raises(InfraNotBlessed, match="warmup file: does not parse"):
        push(model, examples, tmp_path)
    assert_nothing_pushed(tmp_path)


def test_the_replay_has_a_timeout(model, examples, tmp_path):
    config = push_config(infra_timeout_seconds=1)
    with pytest.raises(InfraNotBlessed, match="the replay did not finish within 1 s"):
        push_version(model, tmp_path, NAME, warmup_images(examples, 4), config, {})
    assert_nothing_pushed(tmp_path)


def test_a_refused_push_keeps_the_served_config(model, examples, tmp_path, no_replay):
    push(model, examples, tmp_path)
    before = (tmp_path / MODELS_CONFIG).read_text()
    with pytest.raises(InfraNotBlessed, match="warmup file: holds 3 records; expected 4"):
        images = warmup_images(examples, 4)
        original = executor.write_warmup
        executor.write_warmup = lambda d, n, imgs: original(d, n, imgs[:3])
        try:
            push_version(model, tmp_path, NAME, images, push_config(), {})
        finally:
            executor.write_warmup = original
    assert versions.versions(tmp_path / NAME) == [1] and (tmp_path / MODELS_CONFIG).read_text() == before
    assert json.loads(json.dumps(versions.read_record(tmp_path / NAME / "1")))["version"] == 1


def test_turning_batching_off_removes_batching_config(model, examples, tmp_path, no_replay):
    push(model, examples, tmp_path)
    assert (tmp_path / "batching.config").is_file()
    push(model, examples, tmp_path, batching=dataclasses.replace(push_config().batching, enabled=False))
    assert not (tmp_path / "batching.config").exists() and (tmp_path / MODELS_CONFIG).is_file()


def test_the_real_server_check_can_be_turned_off(model, examples, tmp_path, no_replay):
    check = push(model, examples, tmp_path, real_server_check=False).verdict.checks[-1]
    assert check == Check("real server", Outcome.NOT_CHECKED, "turned off (push.real_server_check)")
