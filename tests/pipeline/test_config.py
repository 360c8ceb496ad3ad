from pathlib import Path

import pytest

from visionpipe.components.train.config import AugmentOpConfig
from visionpipe.config import Config, load_config
from visionpipe.pipeline.config import ConfigError, dump_yaml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_load_without_a_file():
    assert load_config() == Config()


def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "train:\n  epoch: 3\n"))
    message = str(err.value)
    assert "train.epoch" in message and "epochs" in message and "batch_size" in message


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="'trian'.*valid keys under the top level: run, seed"):
        load_config(write(tmp_path, "trian:\n  epochs: 3\n"))


def test_wrong_type_names_the_expected_type(tmp_path):
    with pytest.raises(ConfigError, match=r"train.epochs must be of type int; got 'ten'"):
        load_config(write(tmp_path, "train:\n  epochs: ten\n"))


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_config(write(tmp_path, "train:\n  batch_size: true\n"))


def test_choice_fields_list_the_choices():
    with pytest.raises(
        ConfigError, match="preprocessing.resize_policy must be one of 'stretch', 'pad', 'crop', 'center_crop'"
    ):
        load_config(overrides=["preprocessing.resize_policy=squash"])


def test_dotted_overrides_are_typed():
    config = load_config(
        overrides=[
            "train.epochs=5",
            "train.learning_rate=1",
            "preprocessing.image_size=[64, 48]",
            "train.augment.policy=[flip_horizontal, {op: translate, probability: 0.5}]",
        ]
    )
    assert config.train.epochs == 5
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.preprocessing.image_size == (64, 48)
    assert config.train.augment.policy == (
        AugmentOpConfig("flip_horizontal"),
        AugmentOpConfig("translate", probability=0.5),
    )


def test_a_missing_required_key_and_a_bad_op_are_named():
    with pytest.raises(ConfigError, match=r"train.augment.policy\[0\].op is required"):
        load_config(overrides=["train.augment.policy=[{magnitude: 0.1}]"])
    with pytest.raises(ConfigError, match=r"train.augment.policy\[1\].op must be one of .*'cutmix'"):
        load_config(overrides=["train.augment.policy=[flip_horizontal, flip_diagonal]"])


def test_override_of_unknown_key_fails():
    with pytest.raises(ConfigError, match="train.epochz"):
        load_config(overrides=["train.epochz=5"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["train.epochs"])


def test_resolved_config_round_trips(tmp_path):
    config = load_config(overrides=["train.epochs=7", "model.name=resnet9"])
    assert load_config(write(tmp_path, dump_yaml(config))) == config


def test_shipped_configs_load():
    for path in Path(__file__).resolve().parents[2].glob("configs/*.yaml"):
        load_config(path)


def test_learning_rate_follows_the_global_batch_by_the_chosen_rule():
    tuned_for_256 = ["train.batch_size=1024", "train.learning_rate=0.1", "train.learning_rate_batch=256"]
    peak = {
        rule: load_config(None, [*tuned_for_256, f"train.learning_rate_scaling={rule}"]).train.peak_learning_rate()
        for rule in ("none", "linear", "sqrt")
    }
    assert peak == pytest.approx({"none": 0.1, "linear": 0.4, "sqrt": 0.2})
    with pytest.raises(ConfigError, match="set train.learning_rate_batch"):
        load_config(None, ["train.learning_rate_scaling=linear"])


def test_jit_compile_is_auto_or_a_boolean():
    assert load_config(None, ["train.jit_compile=true"]).train.jit_compile is True
    assert load_config().train.jit_compile == "auto"
    with pytest.raises(ConfigError, match="train.jit_compile"):
        load_config(None, ["train.jit_compile=sometimes"])


def test_explicit_records_the_keys_the_yaml_and_the_overrides_set(tmp_path):
    config = load_config(write(tmp_path, "train:\n  epochs: 12\nmodel:\n  args: {width: 8}\n"), ["seed=1"])
    assert config.explicit == ("model.args.width", "seed", "train.epochs")  # 12 is the default: still yours
    assert load_config().explicit == ()
    # A run's saved config.yaml says which keys its user set, so reloading it gives the same config.
    saved = load_config(write(tmp_path, dump_yaml(config)))
    assert saved == config


def test_data_starts_auto_on_a_folder_or_a_manifest_and_yields_to_what_you_set(tmp_path):
    folder = tmp_path / "my_photos"
    folder.mkdir()
    config = load_config(data=folder)
    assert (config.recipe, config.data.source, config.data.path) == ("auto", "folder", str(folder))
    assert config.run.root == "visionpipe_runs/my_photos" and config.preprocessing.channels == 3
    (tmp_path / "list.csv").write_text("path,label\n")
    manifest = load_config(data=tmp_path / "list.csv")
    assert (manifest.data.source, manifest.run.root) == ("manifest", "visionpipe_runs/list")
    remote = load_config(data="gs://bucket/photos/")
    assert (remote.data.path, remote.run.root) == ("gs://bucket/photos/", "visionpipe_runs/photos")
    with pytest.raises(ConfigError, match="data /no/such/photos: no such folder or manifest file"):
        load_config(data="/no/such/photos")
    assert load_config(data=folder, overrides=["preprocessing.channels=1"]).preprocessing.channels == 1
    # With a YAML file: its recipe, its run.root; --data names the data over the YAML's.
    yaml_file = write(tmp_path, "run: {root: /runs/x}\ndata: {source: folder, path: /elsewhere}\n")
    config = load_config(yaml_file, data=folder)
    assert (config.recipe, config.run.root, config.data.path) == ("manual", "/runs/x", str(folder))
    assert load_config(yaml_file, [f"data.path={tmp_path}"], data=folder).data.path == str(tmp_path)


def test_auto_checks_model_arguments_once_it_picks_the_model_and_the_budget_must_be_positive():
    assert load_config(overrides=["recipe=auto", "model.args.alpha=0.5"]).model.args == {"alpha": 0.5}
    with pytest.raises(ConfigError, match="unknown argument model.args.alpha for model 'small_cnn'"):
        load_config(overrides=["model.args.alpha=0.5"])
    with pytest.raises(ConfigError, match="train.time_budget_minutes must be positive"):
        load_config(overrides=["train.time_budget_minutes=0"])


def test_beam_runner_names_map_to_what_beam_takes_and_unknown_ones_are_refused():
    from visionpipe.pipeline.runner import beam_args

    assert beam_args(load_config(None, ["beam.runner=DaskRunner"]))[0] == (
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"
    )
    assert beam_args(load_config(None, ["beam.runner=PortableRunner"]))[0] == "--runner=PortableRunner"
    assert beam_args(load_config(None, ["beam.runner=my.pkg.MyRunner"]))[0] == "--runner=my.pkg.MyRunner"
    with pytest.raises(ConfigError, match="beam.runner 'DaskRuner' is not one of DirectRunner, PortableRunner, Dask"):
        load_config(None, ["beam.runner=DaskRuner"])
