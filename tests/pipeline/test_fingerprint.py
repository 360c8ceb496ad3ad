"""Cache keys per stage: a stage's code version covers the project files it runs (so an edit
reruns that stage and the ones downstream only), and params that cannot change an output
(experiment tracking, Keras' verbosity) are not in any key."""

import dataclasses
from pathlib import Path

from visionpipe.components.common.config import TrackingConfig
from visionpipe.components.train.spec import params_of
from visionpipe.config import Config
from visionpipe.graph import ALL_STAGES
from visionpipe.pipeline import fingerprint as fp

ROOT = Path(fp.__file__).resolve().parent.parent


def files_of_each_stage() -> dict[str, set[str]]:
    found = {}
    for spec in ALL_STAGES:
        found[spec.name] = {str(p.relative_to(ROOT)) for p in fp._project_files(spec.code_modules())}
    return found


def downstream_of(stage: str) -> list[str]:
    """The stages that read ``stage``'s outputs, directly or through each other: a new output
    changes their input fingerprints, so they rerun after it."""
    found = {stage}
    for spec in ALL_STAGES:
        if any(wire.stage in found for wire in spec.input_fields().values()):
            found.add(spec.name)
    return [s.name for s in ALL_STAGES if s.name in found - {stage}]


def test_an_edit_to_evaluate_reruns_evaluate_export_and_push_only():
    files = files_of_each_stage()
    # evaluate's code is in its own key only; export and push rerun because they read its
    # Blessing, which the rerun makes anew; ingest, validate, tune and train stay cached.
    assert [name for name, used in files.items() if "components/evaluate/executor.py" in used] == ["evaluate"]
    assert downstream_of("evaluate") == ["export", "push"]


def test_what_each_stage_runs_is_followed_through_lazy_imports_and_module_strings():
    files = files_of_each_stage()
    assert "components/export/tfmot_bridge.py" in files["export"]  # started as `python -m ...`
    assert "components/train/executor.py" in files["train"]  # named by the spec as "module:function"
    assert "components/train/auto.py" in files["train"]  # the params resolver's module
    assert "components/train/budget.py" in files["train"] and "components/train/budget.py" not in files["ingest"]
    assert not any(f.startswith("visionpipe/") for used in files.values() for f in used)  # the CLI, the graph


def test_tracking_and_verbosity_are_not_in_the_train_key():
    config = Config()
    tracked = dataclasses.replace(config, tracking=TrackingConfig(mlflow_uri="file:///tmp/mlruns"))
    chatty = dataclasses.replace(config, train=dataclasses.replace(config.train, verbose=2))
    faster = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=config.train.epochs + 1))
    key = fp.digest(params_of(config))
    assert fp.digest(params_of(tracked)) == key and fp.digest(params_of(chatty)) == key
    assert fp.digest(params_of(faster)) != key  # the key still holds what changes the model
