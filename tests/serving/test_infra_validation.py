"""infra_validation.validate on hand-broken files: it parses what was written with the real
protos and refuses, naming the file and the rule, before any replay is started."""

from __future__ import annotations

import pytest

from visionpipe.pipeline.checks import Outcome
from visionpipe.serving import infra_validation
from visionpipe.serving import tf_serving_config as tfs
from visionpipe.serving.infra_validation import Staged, validate


@pytest.fixture(autouse=True)
def no_replay(monkeypatch):
    def replay(*args):
        raise AssertionError("the replay started although a config check failed")

    monkeypatch.setattr(infra_validation, "replay_in_fresh_process", replay)


def staged(tmp_path, models_config: str, batching: str | None = None) -> Staged:
    (tmp_path / tfs.MODELS_CONFIG).write_text(models_config)
    if batching is not None:
        (tmp_path / tfs.BATCHING_CONFIG).write_text(batching)
    return Staged(
        version_dir=tmp_path / "v",
        version=2,
        model_name="visionpipe",
        models_config=tmp_path / tfs.MODELS_CONFIG,
        batching_config=tmp_path / tfs.BATCHING_CONFIG if batching is not None else None,
        on_disk={"visionpipe": [1, 2]},
        available={"visionpipe": {1}},
        before=None,
        warmup_records=4,
    )


CONFIG = """model_config_list {{ config {{
  name: "visionpipe" base_path: "/m/visionpipe" model_platform: "tensorflow"
  model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
  version_labels {{ key: "stable" value: 1 }} version_labels {{ key: "canary" value: {canary} }}
}} }}"""


def test_a_label_pointing_at_a_missing_version_is_refused(tmp_path):
    verdict = validate(staged(tmp_path, CONFIG.format(canary=9)), allow_unavailable=True, timeout=5)
    assert not verdict.blessed and verdict.reason.startswith("models.config: ")
    assert "label 'canary' points at version 9, which is not served" in verdict.reason


def test_a_malformed_models_config_is_refused(tmp_path):
    verdict = validate(staged(tmp_path, "model_config_list { config { nme: 'x' } }"), True, 5)
    assert not verdict.blessed and "does not parse as a ModelServerConfig" in verdict.reason and "nme" in verdict.reason


def test_batch_sizes_not_ending_at_the_maximum_are_refused(tmp_path):
    batching = "max_batch_size { value: 32 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 16\n"
    verdict = validate(staged(tmp_path, CONFIG.format(canary=2), batching), allow_unavailable=True, timeout=5)
    assert [c.outcome for c in verdict.checks] == [Outcome.PASSED, Outcome.FAILED]
    assert verdict.reason == (
        "batching.config: allowed_batch_sizes must end at max_batch_size (32); got [8, 16] "
        "(TF Serving refuses to start otherwise)"
    )


def test_a_missing_warmup_file_is_refused(tmp_path):
    verdict = validate(staged(tmp_path, CONFIG.format(canary=2)), allow_unavailable=True, timeout=5)
    assert verdict.reason.startswith("warmup file: does not parse")
