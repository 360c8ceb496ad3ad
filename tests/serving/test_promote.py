"""Canary pushes and ``visionpipe promote``: stable stays on the previous version while the
new one is canary; promote moves stable after its checks, or refuses and changes nothing."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import visionpipe
from tests.serving.push_fixtures import export_tiny, make_examples, push_config
from visionpipe.components.push import versions
from visionpipe.components.push.executor import InfraNotBlessed, push_version
from visionpipe.components.push.promote import promote
from visionpipe.pipeline.errors import UserError
from visionpipe.serving import infra_validation
from visionpipe.serving.tf_serving_config import MODELS_CONFIG, entry_named, read_models_config
from visionpipe.serving.warmup import warmup_images

NAME = "visionpipe"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("export") / "1")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return warmup_images(make_examples(tmp_path_factory.mktemp("examples")), 4)


@pytest.fixture
def no_replay(monkeypatch):
    """Tests about labels only: the fresh-process replay (seconds a push) passes; the configs
    are still written and checked. test_canary_then_promote runs it for real."""
    result = {"ok": True, "records": 4, "classes": 3, "seconds": 0.0}
    monkeypatch.setattr(infra_validation, "replay_in_fresh_process", lambda *args: result)


def push(model, images, destination, accuracy, canary=True):
    return push_version(model, destination, NAME, images, push_config(canary=canary), {"accuracy": accuracy})


def served(destination):
    entry = entry_named(read_models_config(destination / MODELS_CONFIG), NAME)
    return entry.versions, dict(entry.labels)


def test_canary_then_promote(model, images, tmp_path):
    push(model, images, tmp_path, 0.80)
    assert served(tmp_path) == ((1,), {"stable": 1})  # first push: stable only
    push(model, images, tmp_path, 0.85)
    assert served(tmp_path) == ((1, 2), {"stable": 1, "canary": 2})
    promotion = promote(tmp_path, NAME, allow_unavailable=True)
    assert served(tmp_path) == ((2,), {"stable": 2})
    assert "stable 1 -> 2" in promotion.describe() and "version 2: 0.8500" in promotion.describe()
    with pytest.raises(UserError, match="no canary version to promote"):
        promote(tmp_path, NAME, allow_unavailable=True)


def test_a_canary_over_an_unpromoted_canary_is_refused(model, images, tmp_path, no_replay):
    push(model, images, tmp_path, 0.8)
    push(model, images, tmp_path, 0.8)
    before = (tmp_path / MODELS_CONFIG).read_text()
    # TF Serving never moves a label onto a version it has not loaded yet.
    with pytest.raises(InfraNotBlessed, match="label 'canary' would move from version 2 to version 3"):
        push(model, images, tmp_path, 0.8)
    assert versions.versions(tmp_path / NAME) == [1, 2] and (tmp_path / MODELS_CONFIG).read_text() == before


def test_promote_refuses_a_worse_canary_unless_told(model, images, tmp_path, no_replay):
    push(model, images, tmp_path, 0.90)
    push(model, images, tmp_path, 0.70)
    before = (tmp_path / MODELS_CONFIG).read_text()
    with pytest.raises(UserError, match=r"accuracy 0.7000 < the stable version 1's 0.9000.*--skip-accuracy-check"):
        promote(tmp_path, NAME, allow_unavailable=True)
    assert (tmp_path / MODELS_CONFIG).read_text() == before
    promote(tmp_path, NAME, allow_unavailable=True, check_accuracy=False)
    assert served(tmp_path) == ((2,), {"stable": 2})


def test_promote_refuses_a_canary_without_an_infra_blessing(model, images, tmp_path, no_replay):
    push(model, images, tmp_path, 0.8)
    push(model, images, tmp_path, 0.9)
    record = versions.read_record(tmp_path / NAME / "2")
    versions.write_record(tmp_path / NAME / "2", {**record, "infra": {"status": "INFRA_NOT_BLESSED", "reason": "x"}})
    with pytest.raises(UserError, match=r"the canary version 2 is not infra-blessed \(x\)"):
        promote(tmp_path, NAME, allow_unavailable=True)
    assert served(tmp_path) == ((1, 2), {"stable": 1, "canary": 2})


def test_a_direct_push_after_canaries_serves_the_latest_version(model, images, tmp_path, no_replay):
    push(model, images, tmp_path, 0.8)
    push(model, images, tmp_path, 0.8)
    result = push(model, images, tmp_path, 0.8, canary=False)
    # TF Serving will not move stable onto the unloaded version 3: the labels go instead.
    assert "labels {'canary': 2, 'stable': 1} dropped: push.canary is off" in result.note
    assert served(tmp_path) == (None, {})


def test_promote_through_the_cli(model, images, tmp_path, no_replay):
    push(model, images, tmp_path, 0.8)
    push(model, images, tmp_path, 0.9)
    out = visionpipe("promote", "--destination", str(tmp_path), "--model-name", NAME)
    assert out.returncode == 0, out.stderr
    assert "stable 1 -> 2" in out.stdout and served(tmp_path) == ((2,), {"stable": 2})
    again = visionpipe("promote", "--destination", str(tmp_path), "--model-name", NAME)
    assert again.returncode == 2 and "error: model 'visionpipe' has no canary version to promote" in again.stderr
