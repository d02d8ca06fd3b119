"""GuidanceConfig's ranges, checked at load: a value out of range is refused before any work, as one
line naming the full key, with exit code 2."""

from pathlib import Path

import pytest

from ui3d.cli import main
from ui3d.config import FieldValueError
from ui3d.guidance import GuidanceConfig

DEBUG = str(Path(__file__).resolve().parents[2] / "configs" / "debug" / "text_to_3d.yaml")


@pytest.mark.parametrize(
    "override,expected",
    [
        ("guidance.camera_dropout=2", "config key 'guidance.camera_dropout': expected a value from 0 to 1, got 2"),
        ("guidance.camera_dropout=-0.1", "config key 'guidance.camera_dropout': expected a value from 0 to 1"),
        ("guidance.guidance_scale=-7.5", "config key 'guidance.guidance_scale': expected >= 0, got -7.5"),
        ("guidance.perp_neg_weight=-1", "config key 'guidance.perp_neg_weight': expected >= 0"),
        ("guidance.lora_rank=0", "config key 'guidance.lora_rank': expected a value from 1 to 256, got 0"),
        ("guidance.lora_rank=100000", "config key 'guidance.lora_rank': expected a value from 1 to 256"),
        ("guidance.max_abs_logit=0", "config key 'guidance.max_abs_logit': expected > 0"),
        ("guidance.t_min=0.99", "timesteps need 0 <= t_min < t_max <= 1"),
    ],
)
def test_generate_refuses_guidance_values_out_of_range(tmp_path, capsys, no_run, override, expected):
    out = tmp_path / "run"
    code = main(["generate", "a red cube", "--config", DEBUG, "--out", str(out), override])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not out.exists()


@pytest.mark.parametrize("field,value", [("fisher_weight", -1.0), ("anneal_start", -5), ("max_abs_logit", -1.0)])
def test_the_config_itself_names_the_field(field, value):
    with pytest.raises(FieldValueError) as err:
        GuidanceConfig(**{field: value})
    assert err.value.name == field


def test_the_edges_of_the_ranges_are_allowed():
    config = GuidanceConfig(camera_dropout=1.0, guidance_scale=0.0, lora_rank=256, max_abs_logit=1e-3)
    assert config.lora_rank == 256 and config.camera_dropout == 1.0
