"""models.config and batching.config: built with TF Serving's protos, round-tripped through
text format, and checked against TF Serving's rules (labels, versions, batch sizes)."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from visionpipe.config import load_config
from visionpipe.pipeline.config import ConfigError
from visionpipe.serving import tf_serving_config as tfs


def labelled(versions=(1, 2), labels=None) -> tfs.ModelEntry:
    return tfs.ModelEntry("visionpipe", "/models/visionpipe", versions, labels or {"stable": 1, "canary": 2})


def test_models_config_round_trips_through_the_proto(tmp_path):
    other = tfs.ModelEntry("other", "/models/other")
    path = tmp_path / tfs.MODELS_CONFIG
    tfs.write_text_proto(path, tfs.model_server_config([labelled(), other]))
    parsed = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    first, second = parsed.model_config_list.config
    assert (first.name, first.base_path, first.model_platform) == ("visionpipe", "/models/visionpipe", "tensorflow")
    assert list(first.model_version_policy.specific.versions) == [1, 2]
    assert dict(first.version_labels) == {"stable": 1, "canary": 2}
    assert second.model_version_policy.latest.num_versions == 1 and not second.version_labels
    assert tfs.entries_of(tfs.read_models_config(path)) == [labelled(), other]
    assert not list(tmp_path.glob(".*")), "the temp file of the atomic write was left behind"


def test_replace_entry_keeps_other_models():
    config = tfs.model_server_config([tfs.ModelEntry("other", "/o"), labelled()])
    replaced = tfs.replace_entry(config, tfs.ModelEntry("visionpipe", "/models/visionpipe"))
    assert [e.name for e in tfs.entries_of(replaced)] == ["other", "visionpipe"]
    assert tfs.entry_named(replaced, "visionpipe").versions is None


def test_batching_config_round_trips_through_the_proto(tmp_path):
    path = tmp_path / tfs.BATCHING_CONFIG
    tfs.write_text_proto(path, tfs.batching_parameters(32, 2000, 2, 100, [8, 16, 32]))
    text = path.read_text()
    assert "max_batch_size {\n  value: 32\n}" in text and "allowed_batch_sizes: 32" in text
    parsed = text_format.Parse(text, tfs.batching_parameters_class()())
    assert parsed.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    assert (parsed.max_batch_size.value, parsed.batch_timeout_micros.value) == (32, 2000)
    assert (parsed.num_batch_threads.value, parsed.max_enqueued_batches.value) == (2, 100)
    assert list(parsed.allowed_batch_sizes) == [8, 16, 32]
    assert tfs.check_batching(tfs.read_batching(path)) == []


@pytest.mark.parametrize(
    ("sizes", "problem"),
    [((8, 16), "must end at max_batch_size (32)"), ((16, 8, 32), "strictly increasing"), ((8, 8, 32), "strictly")],
)
def test_bad_allowed_batch_sizes_are_caught(sizes, problem):
    assert any(problem in p for p in tfs.check_batching(tfs.batching_parameters(32, 0, 1, 1, sizes)))
    with pytest.raises(ConfigError, match="push.batching: allowed_batch_sizes"):
        load_config(None, [f"push.batching.allowed_batch_sizes={list(sizes)}"])


def test_warmup_requests_over_1000_fail_at_config_load():
    with pytest.raises(ConfigError, match="push.warmup_requests must be between 1 and 1000"):
        load_config(None, ["push.warmup_requests=1001"])
    assert load_config(None, ["push.warmup_requests=1000"]).push.warmup_requests == 1000


def check(entry: tfs.ModelEntry, on_disk=(1, 2), loaded=(1,), allow=True) -> list[str]:
    config = tfs.model_server_config([entry])
    return tfs.check_models_config(config, {entry.name: list(on_disk)}, {entry.name: set(loaded)}, allow)


def test_a_sound_canary_config_passes():
    assert check(labelled()) == []


def test_a_label_pointing_nowhere_is_caught():
    problems = check(labelled(versions=(1, 2), labels={"stable": 1, "canary": 3}))
    assert any("label 'canary' points at version 3, which is not served" in p for p in problems)
    problems = check(labelled(versions=(1, 5)))
    assert any("names versions [5], which are not on disk" in p for p in problems)


def test_label_syntax_is_tf_servings():
    problems = check(labelled(labels={"stable": 1, "can-ary": 2}))
    assert any("'can-ary' must match [A-Za-z0-9_]+" in p for p in problems)


def test_a_label_on_an_unloaded_version_needs_the_allow_flag():
    assert check(labelled(), allow=True) == []
    problems = check(labelled(), allow=False)
    assert any("label 'canary' points at version 2, which the server has not loaded" in p for p in problems)


def test_an_existing_label_never_moves_onto_an_unloaded_version():
    before = labelled(versions=(1, 2))
    after = dataclasses.replace(before, versions=(1, 3), labels={"stable": 1, "canary": 3})
    problems = tfs.check_label_moves(before, after, available={1, 2}, allow_unavailable=True)
    assert problems and "would move from version 2 to version 3" in problems[0]
    promoted = dataclasses.replace(before, versions=(2,), labels={"stable": 2})
    assert tfs.check_label_moves(before, promoted, available={1, 2}, allow_unavailable=True) == []


def test_the_default_batching_config_runs_partial_batches_without_padding(tmp_path):
    # Padding rows are computed like real ones: on a CPU they only cost time (BENCHMARKS.md).
    from visionpipe.serving.batching import BatchingOptions
    from visionpipe.serving.config import BatchingConfig

    b = BatchingConfig()
    path = tmp_path / tfs.BATCHING_CONFIG
    params = tfs.batching_parameters(
        b.max_batch_size, b.batch_timeout_micros, b.num_batch_threads, b.max_enqueued_batches, b.allowed_batch_sizes
    )
    tfs.write_text_proto(path, params)
    options = BatchingOptions.from_file(path)
    assert [options.padded_size(rows) for rows in (1, 3, 9, b.max_batch_size)] == [1, 3, 9, b.max_batch_size]
