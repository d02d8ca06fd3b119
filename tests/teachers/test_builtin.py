"""The built-in teacher: files, training loop, the shipped weights, the CLI's errors."""

import pickle

import pytest
import torch

from ui3d.config import load_config
from ui3d.diffusion import VPSchedule
from ui3d.io import read_safetensors
from ui3d.teachers.builtin import (
    DEFAULT_TEACHER_PATH,
    BuiltinTeacher,
    BuiltinTeacherConfig,
    BuiltinTeacherModel,
    bf16_is_fast,
    save_teacher,
)
from ui3d.teachers.builtin_train import TeacherTrainConfig, denoising_loss, train_teacher
from ui3d.teachers.cli import CONFIG_DIR
from ui3d.teachers.protocol import Teacher, cfg_combine, guided_eps
from ui3d.world.dataset import WorldDataset, WorldDatasetConfig

TINY = BuiltinTeacherConfig(channels=(8, 16, 16), text_dim=16, text_layers=1, text_heads=2)


class _Linear:
    """A fake teacher whose ε is x_t times the caption id + 1: CFG arithmetic is checkable."""

    schedule = VPSchedule.scaled_linear()
    takes_camera = False
    calls = 0

    def predict_eps(self, x_t, t, emb):
        self.calls += 1
        return x_t * (emb.view(-1, 1, 1, 1) + 1.0)


def test_cfg_combine_and_guided_eps():
    eu, ec = torch.tensor([1.0]), torch.tensor([3.0])
    assert cfg_combine(eu, ec, 0.0) == 1.0 and cfg_combine(eu, ec, 1.0) == 3.0 and cfg_combine(eu, ec, 7.5) == 16.0
    fake = _Linear()
    x = torch.ones(2, 1, 1, 1)
    out = guided_eps(fake, x, torch.tensor([5, 5]), torch.tensor([[2.0], [4.0]]), torch.tensor([[0.0]]), 2.0)
    # eps_u = 1, eps_c = 3 and 5 -> 1 + 2*(2, 4)
    assert out.flatten().tolist() == [5.0, 9.0] and fake.calls == 1


def test_save_load_round_trip_and_predict_shapes(tmp_path):
    torch.manual_seed(0)
    model = BuiltinTeacherModel(TINY)
    path = save_teacher(model, tmp_path / "t.safetensors", {"steps": 3})
    teacher = BuiltinTeacher.load(path, autocast=False)
    assert isinstance(teacher, Teacher) and teacher.info == {"steps": 3}
    emb = teacher.encode_prompts(["a red cube", ""])
    assert emb.shape == (2, 12, 16)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model.eval()(x, torch.tensor([10, 900]), model.encode_text(["a red cube", ""]))
    assert torch.allclose(teacher.predict_eps(x, torch.tensor([10, 900]), emb), ref, atol=1e-5)
    # pixel teacher: encode is a rescale (+ resize), decode its inverse
    rgb = torch.rand(1, 3, 32, 32)
    assert torch.allclose(teacher.decode(teacher.encode(rgb)), rgb, atol=1e-6)
    assert teacher.encode(torch.rand(1, 3, 64, 64)).shape == (1, 3, 32, 32)


def test_bad_weight_files_are_named_and_never_unpickled(tmp_path, monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match="nope.safetensors' not found"):
        BuiltinTeacher.load(missing)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x80\x04 definitely not safetensors" * 10)
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        BuiltinTeacher.load(corrupt)
    # a valid safetensors file of another kind
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"kind": "something"})
    with pytest.raises(ValueError, match="other.safetensors' is not a ui3d.builtin_teacher"):
        read_safetensors(other, "ui3d.builtin_teacher")


def test_tiny_training_checkpoints_and_resumes(tmp_path):
    cfg = load_config(TeacherTrainConfig, CONFIG_DIR / "tiny.yaml", ["steps=2"])
    out = tmp_path / "run"
    train_teacher(cfg, out, progress=False)
    _, meta = read_safetensors(out / "checkpoint.safetensors", "ui3d.teacher_checkpoint")
    assert meta["step"] == "2" and (out / "config.yaml").is_file()
    with pytest.raises(ValueError, match="--resume"):
        train_teacher(cfg, out, progress=False)
    cfg3 = load_config(TeacherTrainConfig, out / "config.yaml", ["steps=3"])
    path = train_teacher(cfg3, out, resume=True, progress=False)
    _, meta = read_safetensors(out / "checkpoint.safetensors", "ui3d.teacher_checkpoint")
    assert meta["step"] == "3"
    assert BuiltinTeacher.load(path).info["steps"] == 3


def _heldout(n=48):
    batch = WorldDataset(WorldDatasetConfig(resolution=32), seed=987654).batch(0, n)
    return batch.images, batch.captions


def test_shipped_teacher_denoises_far_better_than_untrained():
    teacher = BuiltinTeacher.load(DEFAULT_TEACHER_PATH)
    assert teacher.info["steps"] > 1000
    images, captions = _heldout()
    t = torch.linspace(50, 950, len(captions)).long()

    def loss(model):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_is_fast("cpu")):
            hidden = model.encode_text(captions)
            return denoising_loss(model, teacher.schedule, images, hidden, torch.Generator().manual_seed(0), t=t).item()

    torch.manual_seed(0)
    untrained = BuiltinTeacherModel(teacher.config).eval()
    trained, base = loss(teacher.model), loss(untrained)
    assert trained < 0.2 * base, (trained, base)
    assert trained < 0.05


def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys):
    from ui3d.cli import main

    out = str(tmp_path / "x.png")
    cases = {
        "": "empty",
        "a ceramic giraffe": "'giraffe'",
        "a red": "no object word",
        "a red blue cube": "one colour per prompt",
        "a cube red": "must come last",
    }
    for prompt, expected in cases.items():
        assert main(["teacher", "sample", prompt, "--steps", "2", "--out", out]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "knows objects" in err
    assert not (tmp_path / "x.png").exists()
    assert main(["teacher", "sample", "a red cube", "--weights", str(tmp_path / "w.safetensors"), "--out", out]) == 2
    assert "w.safetensors' not found" in capsys.readouterr().err


def test_fp32_inference_matches_the_bf16_training_precision():
    """The teacher runs in fp32 where the CPU has no native bf16 (bf16 there was 37x slower); its
    predictions must agree with the bf16 ones it was trained under, to bf16's precision."""
    teacher = BuiltinTeacher.load(DEFAULT_TEACHER_PATH)
    images, captions = _heldout(4)
    hidden = teacher.encode_prompts(captions)
    t = torch.tensor([100, 300, 600, 900])
    alpha, sigma = teacher.schedule.alpha_sigma(t)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    x_t = alpha.view(-1, 1, 1, 1) * images + sigma.view(-1, 1, 1, 1) * noise
    assert teacher.autocast is None  # the default: decided per device at each forward
    eps_default = teacher.predict_eps(x_t, t, hidden)
    teacher.autocast = False
    eps32 = teacher.predict_eps(x_t, t, hidden)
    teacher.autocast = True
    eps16 = teacher.predict_eps(x_t, t, hidden)
    torch.testing.assert_close(eps_default, eps16 if bf16_is_fast("cpu") else eps32, rtol=0, atol=0)
    rel = (eps32 - eps16).norm() / eps32.norm()
    assert rel < 0.03, rel


def test_cosine_lr_warms_up_then_anneals_to_lr_min_at_the_last_step():
    from ui3d.config import FieldValueError
    from ui3d.teachers.builtin_train import _lr_at

    cfg = TeacherTrainConfig(lr=1e-3, lr_min=1e-5, warmup_steps=10, steps=110, lr_schedule="cosine")
    assert _lr_at(cfg, 0) == pytest.approx(1e-4)  # warm-up: (step + 1) / warmup_steps
    assert _lr_at(cfg, 10) == pytest.approx(1e-3)
    assert _lr_at(cfg, 60) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way through the decay
    assert _lr_at(cfg, 110) == pytest.approx(1e-5)
    lrs = [_lr_at(cfg, s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert _lr_at(TeacherTrainConfig(lr=1e-3, warmup_steps=10, steps=110), 100) == 1e-3  # constant stays
    with pytest.raises(FieldValueError, match="lr_schedule"):
        TeacherTrainConfig(lr_schedule="linear")
