"""systems.resolve: the one config resolver (preset < guidance preset < flags < overrides) that the CLI,
the web demo and the benchmark share; every YAML preset loads strictly."""

from dataclasses import replace
from pathlib import Path

import pytest

from systems.resolve import CONFIG_DIR, GenerateRequest, resolve, resume_config, text_to_3d_config
from systems.text_to_3d import TextTo3DConfig
from ui3d.config import ConfigError, dump_yaml
from ui3d.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _preset_classes() -> dict:
    from systems.distill_2d import Distill2DConfig
    from systems.image_distill import ImageDistillConfig
    from ui3d.teachers.builtin_train import TeacherTrainConfig

    return {"text_to_3d": TextTo3DConfig, "image_distill": ImageDistillConfig, "distill_2d": Distill2DConfig,
            "teacher": TeacherTrainConfig}


def test_every_yaml_preset_loads_strictly(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # found from the repository, not the working folder
    classes = _preset_classes()
    presets = sorted(CONFIG_DIR.rglob("*.yaml"))
    names = {str(p.relative_to(ROOT / "configs")) for p in presets}
    assert {"text_to_3d/quality.yaml", "image_distill/cifar10.yaml", "teacher/builtin.yaml",
            "debug/text_to_3d.yaml"} <= names
    for path in presets:
        folder = path.parent.name
        cls = classes[path.stem if folder == "debug" else folder]  # configs/debug/<kind>.yaml
        assert isinstance(resolve(cls, path), cls), path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_layers_preset_then_guidance_preset_then_flags_then_overrides(tmp_path):
    preset = _write(tmp_path / "p.yaml", "steps: 5\nresolution: 16\nguidance:\n  guidance_scale: 20.0\n")
    base = GenerateRequest(prompt="a red cube", config=preset, teacher="builtin")
    cfg = text_to_3d_config(base)
    assert (cfg.steps, cfg.resolution, cfg.guidance.guidance_scale) == (5, 16, 20.0)  # the file over the defaults
    assert cfg.guidance.divergence == "fkl"  # the rest of the guidance is the default uni-instruct preset
    sds = text_to_3d_config(replace(base, guidance="sds"))
    assert (sds.guidance.guidance_scale, sds.guidance.fake_score) == (100.0, "noise")  # --guidance over the file
    flags = text_to_3d_config(replace(base, guidance="vsd", divergence="js", steps=7))
    assert (flags.guidance.divergence, flags.guidance.fake_score, flags.steps) == ("js", "lora", 7)
    last = text_to_3d_config(replace(base, steps=7, divergence="js", overrides=("steps=9", "guidance.divergence=rkl")))
    assert (last.steps, last.guidance.divergence) == (9, "rkl")


@pytest.mark.parametrize("teacher,expected", [("builtin", 2.5), ("runs/other.safetensors", 2.5), ("sd", 7.5),
                                              ("exact-camera", 7.5)])
def test_vsd_and_uni_instruct_take_the_teachers_cfg(teacher, expected, tmp_path):
    """The built-in teacher's samples grow with CFG (docs/benchmarks.md), so its runs guide at 2.5;
    Stable Diffusion keeps ProlificDreamer's 7.5, SDS its 100, and a config or override still wins."""
    request = GenerateRequest(prompt="a red cube", teacher=teacher)
    for guidance in (None, "vsd", "uni-instruct"):
        assert text_to_3d_config(replace(request, guidance=guidance)).guidance.guidance_scale == expected
    assert text_to_3d_config(replace(request, guidance="sds")).guidance.guidance_scale == 100.0
    override = text_to_3d_config(replace(request, overrides=("guidance.guidance_scale=4",)))
    assert override.guidance.guidance_scale == 4.0
    assert TextTo3DConfig(teacher=teacher).guidance.guidance_scale == expected  # every constructor resolves it
    dump_yaml(text_to_3d_config(request), tmp_path / "config.yaml")  # the run records the number it used
    assert resolve(TextTo3DConfig, tmp_path / "config.yaml").guidance.guidance_scale == expected


def test_divergence_reaches_the_guidance_one_way():
    request = GenerateRequest(prompt="a red cube", teacher="builtin", guidance="uni-instruct")
    by_flag = text_to_3d_config(replace(request, divergence="jeffreys"))
    by_key = text_to_3d_config(replace(request, overrides=("guidance.divergence=jeffreys",)))
    assert by_flag == by_key and by_flag.guidance.divergence == "jeffreys"


@pytest.mark.parametrize("how", [{"divergence": "js"}, {"overrides": ("guidance.divergence=js",)}])
def test_a_divergence_given_to_sds_is_refused_with_the_reason(how):
    request = GenerateRequest(prompt="a red cube", teacher="builtin", guidance="sds")
    assert text_to_3d_config(request).guidance.divergence == "rkl"  # sds itself is fine
    with pytest.raises(ConfigError) as err:
        text_to_3d_config(replace(request, **how))
    message = str(err.value)
    assert message.startswith("config key 'guidance.divergence': 'js' has no effect with fake_score 'noise'")
    assert "h(1)" in message and "--guidance vsd or uni-instruct" in message


def test_unknown_preset_and_missing_cuda_are_user_errors():
    with pytest.raises(UserError, match=r"^--preset 'fastest': no such preset \(choices: fast, quality\)$"):
        text_to_3d_config(GenerateRequest(prompt="a red cube", preset="fastest"))
    with pytest.raises(UserError, match=r"^--device 'tpu': expected cpu or cuda"):
        text_to_3d_config(GenerateRequest(prompt="a red cube", device="tpu"))


def test_resume_reads_the_run_config_and_changes_only_steps(tmp_path):
    run = tmp_path / "run"
    dump_yaml(TextTo3DConfig(prompt="a red cube", steps=2), run / "config.yaml")
    with pytest.raises(UserError, match="not a run folder"):
        resume_config(TextTo3DConfig, run, ["steps=4"])
    (run / "checkpoint.pt").write_bytes(b"")
    assert resume_config(TextTo3DConfig, run, ["steps=4"]).steps == 4
    with pytest.raises(UserError, match=r"^--resume takes only --steps N"):
        resume_config(TextTo3DConfig, run, ["seed=3"])
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("\nresolution: 32", "\nresolution: 100000"))
    with pytest.raises(ConfigError, match=r"^--resume '.*run': config.yaml: config key 'resolution': expected a value "
                                          r"from 1 to 1024, got 100000$"):
        resume_config(TextTo3DConfig, run)
