"""Teacher training on turned pairs (data.turned_pairs_deg)."""

import json

import pytest
import torch

from ui3d.config import ConfigError, load_config
from ui3d.io import read_safetensors
from ui3d.teachers.builtin_train import DATA_KIND, TeacherTrainConfig, draw_batch, pair_partners, train_teacher
from ui3d.teachers.cli import CONFIG_DIR


def test_turned_pairs_are_rendered_and_trained_pair_by_pair(tmp_path):
    """data.turned_pairs_deg: each render batch holds its scenes, then the same scenes turned (one
    background, one caption's words, the camera turned); pair_partners finds each twin; training runs."""
    partners = pair_partners(8, 4)
    assert partners.tolist() == [2, 3, 0, 1, 6, 7, 4, 5] and torch.equal(partners[partners], torch.arange(8))
    cfg = load_config(TeacherTrainConfig, CONFIG_DIR / "tiny.yaml", ["data.turned_pairs_deg=45", "model.camera_dim=7",
                                                                        "steps=2"])
    run = train_teacher(cfg, tmp_path / "run", progress=False)
    tensors, meta = read_safetensors(tmp_path / "run" / "data.safetensors", DATA_KIND)
    captions = json.loads(meta["captions"])
    cams, images = tensors["cameras"], tensors["images"]
    twins = pair_partners(len(captions), cfg.data.render_batch)
    az = torch.rad2deg(torch.atan2(cams[:, 0], cams[:, 1]))
    first = torch.arange(len(captions)) % cfg.data.render_batch < cfg.data.render_batch // 2
    torch.testing.assert_close((az[twins] - az)[first] % 360, torch.full((int(first.sum()),), 45.0), atol=1e-3, rtol=0)
    assert all(captions[i].split(",")[0] == captions[j].split(",")[0] for i, j in enumerate(twins.tolist()))
    assert torch.equal(images[:, :, 0, 0], images[twins, :, 0, 0])  # one background per pair
    assert run.is_file()
    with pytest.raises(ConfigError, match="render_batch"):
        load_config(TeacherTrainConfig, CONFIG_DIR / "tiny.yaml", ["data.turned_pairs_deg=45", "data.n_images=48"])


def test_a_paired_batch_holds_whole_pairs_and_shares_draws_within_them():
    partners = pair_partners(8, 4)
    idx, draws, shared = draw_batch(8, 6, torch.Generator().manual_seed(0), partners)
    assert draws == 3 and torch.equal(idx[3:], partners[idx[:3]]) and bool((idx[:3] % 4 < 2).all())
    assert torch.equal(shared(torch.tensor([1, 2, 3])), torch.tensor([1, 2, 3, 1, 2, 3]))
    idx, draws, shared = draw_batch(8, 6, torch.Generator().manual_seed(0))
    assert draws == 6 and len(idx) == 6 and torch.equal(shared(torch.arange(6)), torch.arange(6))
