"""The tune stage's saved search state survives a kill at any moment: files are replaced whole,
and a state damaged before that (an empty oracle.json) is named with what to do."""

import json

import pytest

from visionpipe.components.tune.executor import _check_saved_state, _replace
from visionpipe.pipeline.errors import UserError


def test_a_write_that_dies_midway_leaves_the_old_state_whole(tmp_path):
    state = tmp_path / "oracle.json"
    state.write_text(json.dumps({"trials": 2}))

    def dies_midway(path):
        path.write_text('{"tri')  # what an in-place write leaves when the process is killed here
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _replace(state, dies_midway)
    assert json.loads(state.read_text()) == {"trials": 2}
    _replace(state, lambda path: path.write_text(json.dumps({"trials": 3})))
    assert json.loads(state.read_text()) == {"trials": 3}


def test_a_damaged_state_file_is_named_with_what_to_do(tmp_path):
    (tmp_path / "trial_0001").mkdir()
    (tmp_path / "oracle.json").write_text("{}")
    (tmp_path / "trial_0001" / "trial.json").write_text("")  # killed mid-write by an older version
    with pytest.raises(UserError, match=r"trial_0001/trial.json is damaged .* move .* away to start this search anew"):
        _check_saved_state(tmp_path)
