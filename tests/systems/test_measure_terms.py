"""`python -m systems.measure_terms --ratio`: the discriminator's log r per timestep, on renders and on
the teacher's own samples (trained-on and held-out)."""

import pytest
import torch

from systems.measure_terms import ratio_by_timestep
from systems.resolve import GenerateRequest, text_to_3d_config
from systems.text_to_3d import prepare


def test_a_constant_discriminator_gives_a_constant_log_r(tmp_path):
    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml",
                                            overrides=("real_samples_per_view=2",)))
    job = prepare(cfg, tmp_path / "run", resume=False)
    head = job.guidance.fake.discriminator_head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(7.0)  # beyond the clamp of 5
    rows = ratio_by_timestep(job, batches=2, timesteps=(100, 900))
    assert [r["t"] for r in rows] == [100, 900]
    for r in rows:
        assert r["std log r (renders)"] == 0.0
        assert r["mean log r (renders)"] == r["mean log r (held-out teacher samples)"] == pytest.approx(cfg.guidance.max_abs_logit)
        assert r["accuracy (renders vs held-out)"] == 0.5  # every render called real, every sample too
