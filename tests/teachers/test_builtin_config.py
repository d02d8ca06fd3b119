"""The built-in teacher's user errors: its config's bounds (checked at load, before a run folder is
made), a run folder that is taken or has nothing to resume, and a weights file that is no teacher."""

import json

import pytest
import torch

from ui3d.cli import main
from ui3d.config import FieldValueError
from ui3d.errors import UserError
from ui3d.teachers.builtin import KIND, BuiltinTeacherConfig, load_teacher_model


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model.resolution=512", "config key 'model.resolution': expected a value from 8 to 256, got 512"),
        ("model.channels=[8,2000]", "config key 'model.channels': expected 1 to 6 levels of 1 to 1024 channels each"),
        ("model.channels=[]", "config key 'model.channels': expected 1 to 6 levels"),
        ("model.norm_groups=3", "config key 'model.norm_groups': 3 must divide every level's channels [8, 16, 16]"),
        ("model.text_heads=5", "config key 'model.text_heads': 5 must divide text_dim 16"),
        ("model.max_length=100000", "config key 'model.max_length': expected a value from 3 to 256"),
    ],
)
def test_teacher_train_refuses_a_model_out_of_bounds_before_any_work(tmp_path, capsys, override, expected):
    out = tmp_path / "run"
    code = main(["teacher", "train", "--out", str(out), "--config", "tiny", "--quiet", override])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not out.exists()


def test_the_shipped_shapes_are_within_bounds():
    assert BuiltinTeacherConfig().channels == (32, 64, 64)
    with pytest.raises(FieldValueError) as err:
        BuiltinTeacherConfig(channels=(32, 64, 64), norm_groups=24)
    assert err.value.name == "norm_groups"


def test_teacher_train_into_a_taken_folder_or_resume_without_a_run(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "checkpoint.safetensors").write_bytes(b"a run was here")
    assert main(["teacher", "train", "--out", str(taken), "--config", "tiny", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"ui3d teacher: error: --out '{taken}' already holds a run; pass --resume "
                                       "to continue it or choose a new folder\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["teacher", "train", "--out", str(empty), "--config", "tiny", "--quiet", "--resume"]) == 2
    assert "--resume: no checkpoint in" in capsys.readouterr().err
    assert list(empty.iterdir()) == []


def test_a_weights_file_that_is_no_teacher_is_one_line(tmp_path):
    """The right kind, but tensors of another model: load_state_dict's many lines become one."""
    from safetensors.torch import save_file

    from ui3d.teachers.text import WordTokenizer

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={
        "kind": KIND, "config": json.dumps({**BuiltinTeacherConfig().__dict__, "channels": [32, 64, 64]}),
        "tokenizer": json.dumps(WordTokenizer.builtin().to_dict())})
    with pytest.raises(UserError) as err:
        load_teacher_model(path)
    message = str(err.value)
    assert message.startswith(f"weights file '{path}' does not hold a valid built-in teacher (")
    assert "\n" not in message and "Missing key(s)" in message and len(message) < 400
