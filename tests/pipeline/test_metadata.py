import pytest

from visionpipe.pipeline.artifacts import Examples, Model
from visionpipe.pipeline.metadata import MetadataStore


def test_failed_execution_registers_nothing(tmp_path):
    store = MetadataStore(tmp_path / "m.sqlite")
    run = store.start_run("code", {}, "test")
    execution = store.start_execution(run, "train", "fp1", {})
    store.fail_execution(execution, "boom")
    assert store.latest_outputs("train") is None
    assert store.cached_outputs("train", "fp1") is None


def test_killed_execution_is_marked_and_ignored(tmp_path):
    store = MetadataStore(tmp_path / "m.sqlite")
    run = store.start_run("code", {}, "test")
    store.start_execution(run, "train", "fp1", {})
    store.abandon_running()
    assert [e["status"] for e in store.executions_of_run(run)] == ["killed"]
    assert store.latest_outputs("train") is None


def test_outputs_cache_and_lineage(tmp_path):
    store = MetadataStore(tmp_path / "m.sqlite")
    run = store.start_run("code", {}, "test")
    examples_dir, model_dir = tmp_path / "examples", tmp_path / "model"
    examples_dir.mkdir()
    model_dir.mkdir()
    ingest = store.start_execution(run, "ingest", "fp-i", {})
    examples = Examples(uri=str(examples_dir), properties={"n": 3}, fingerprint="a")
    store.finish_execution(ingest, {"examples": examples}, {"ingested": 3})
    train = store.start_execution(run, "train", "fp-t", {"examples": examples})
    model = Model(uri=str(model_dir), fingerprint="b")
    store.finish_execution(train, {"model": model}, {"val_accuracy": 0.5})

    cached = store.cached_outputs("train", "fp-t")
    assert cached["model"].uri == str(model_dir) and isinstance(cached["model"], Model)
    assert store.succeeded_summary("train", "fp-t") == {"val_accuracy": 0.5}
    chain = store.lineage(model.id)
    assert [step["stage"] for step in chain] == ["train", "ingest"]
    assert chain[0]["inputs"] == {"examples": examples.id}

    model_dir.rmdir()  # an artifact deleted from disk is not served from cache
    assert store.cached_outputs("train", "fp-t") is None


def test_locations_are_relative_to_the_root_and_old_absolute_ones_are_rebased(tmp_path):
    store = MetadataStore(tmp_path / "runs" / "metadata.sqlite")
    run = store.start_run("code", {}, "test")
    execution = store.start_execution(run, "train", "fp-t", {})
    model_dir = tmp_path / "runs" / "artifacts" / "train" / "1" / "model"
    model_dir.mkdir(parents=True)
    store.finish_execution(execution, {"model": Model(uri=str(model_dir))}, {})
    # A store written before locations were relative, copied from another machine's root.
    store._db.execute(
        "INSERT INTO artifacts (type, uri, properties, fingerprint, created) VALUES "
        "('Model', '/old/machine/runs/artifacts/train/0/model', '{}', '', 0)"
    )
    store.close()
    again = MetadataStore(tmp_path / "runs" / "metadata.sqlite")
    stored = [row["uri"] for row in again._db.execute("SELECT uri FROM artifacts ORDER BY id")]
    assert stored == ["artifacts/train/1/model", "artifacts/train/0/model"]
    assert again.latest_outputs("train")[1]["model"].uri == str(model_dir)
    with pytest.raises(ValueError, match="is not under the run root"):
        again.stored_location(str(tmp_path / "elsewhere" / "model"))


def test_an_artifact_marked_removed_is_never_reused_even_with_its_files_still_there(tmp_path):
    store = MetadataStore(tmp_path / "runs" / "metadata.sqlite")
    run = store.start_run("code", {}, "test")
    execution = store.start_execution(run, "train", "fp-t", {})
    model = Model(uri=str(tmp_path / "runs" / "artifacts" / "train" / "1" / "model"))
    model.path.mkdir(parents=True)
    store.finish_execution(execution, {"model": model}, {})
    assert store.artifact_ids_of_runs([run]) == {model.id} and store.artifact_ids_of_runs([]) == set()
    assert store.latest_output_ids() == {model.id}
    store.mark_removed([model.id])  # a gc killed before it deleted the folder
    assert model.path.exists() and store.cached_outputs("train", "fp-t") is None
    assert store.latest_outputs("train")[1]["model"].removed
    assert [a.removed for a in store.artifacts()] == [True]
