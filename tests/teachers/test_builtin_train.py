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


def test_device_is_checked_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="device"):
        load_config(TeacherTrainConfig, CONFIG_DIR / "tiny.yaml", ["device=tpu"])
    if torch.cuda.is_available():
        return  # the no-CUDA refusal below is about machines without CUDA
    cfg = load_config(TeacherTrainConfig, CONFIG_DIR / "tiny.yaml", ["device=cuda"])
    with pytest.raises(ValueError, match="no CUDA device"):
        train_teacher(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before the folder, the renders or a step


def _trained_weights(tmp_path, device):
    cfg = load_config(TeacherTrainConfig, CONFIG_DIR / "tiny.yaml", ["steps=3", f"device={device}", "autocast=false",
                                                                        "data.turned_pairs_deg=45", "model.camera_dim=7"])
    return cfg, read_safetensors(train_teacher(cfg, tmp_path / device, progress=False), "ui3d.builtin_teacher")[0]


@pytest.mark.gpu
def test_training_on_cuda_takes_the_cpu_runs_steps(tmp_path):
    """The random draws stay on the CPU's generator, so a CUDA run takes the same batches, timesteps
    and noise as a CPU run: after three fp32 steps the two differ by round-off, far less than the
    steps moved the weights (another data order would differ by about as much as the steps)."""
    from ui3d.teachers.builtin import BuiltinTeacherModel

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cfg, cpu = _trained_weights(tmp_path, "cpu")
    _, cuda = _trained_weights(tmp_path, "cuda")
    torch.manual_seed(cfg.seed)  # the initial weights, as _train makes them
    start = BuiltinTeacherModel(cfg.model).state_dict()
    moved = torch.cat([(cpu[k] - start[k].float()).flatten() for k in cpu]).norm()
    apart = torch.cat([(cuda[k] - cpu[k]).flatten() for k in cpu]).norm()
    assert moved > 0 and apart < 0.01 * moved, f"CUDA vs CPU {apart:.3g}, the steps moved {moved:.3g}"
