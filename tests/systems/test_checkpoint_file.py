"""A run's checkpoint.pt as the user's file: missing, corrupt or foreign is a UserError naming it, and
never unpickled."""

from pathlib import PurePosixPath

import pytest
import torch

from systems.base import load_checkpoint, save_checkpoint
from ui3d.errors import UserError


def test_missing_corrupt_and_pickled_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint at '.*nothing.pt'"):
        load_checkpoint(tmp_path / "nothing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(UserError, match="checkpoint '.*corrupt.pt' cannot be read"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"path": PurePosixPath("/x")}, foreign)  # a pickled object weights_only refuses
    with pytest.raises(UserError, match="foreign.pt' cannot be read"):
        load_checkpoint(foreign)


def test_a_checkpoint_reads_back(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 3, "w": torch.ones(2)})
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
