"""`ui3d bench distill2d` reads the config's mixture file (it used to run the ring whatever the file said)."""

import json

import pytest

from systems.bench_2d import run_grid
from systems.distill_2d import Distill2DConfig
from systems.resolve import resolve
from ui3d.errors import UserError

DEBUG = "configs/debug/distill_2d.yaml"


def test_the_bench_runs_the_mixture_file_of_its_config(tmp_path):
    mixture = tmp_path / "three.json"
    mixture.write_text(json.dumps({"means": [[-3, 0], [0, 3], [3, 0]], "stds": [0.3, 0.3, 0.3], "weights": [1, 1, 0.1]}))
    base = resolve(Distill2DConfig, DEBUG, overrides=[f"mixture={mixture}"])
    (result,) = run_grid(base, ["fkl"], ["exact"], 1, tmp_path / "bench")
    assert result["n_modes"] == 3


def test_a_bad_mixture_file_fails_before_any_run(tmp_path):
    base = resolve(Distill2DConfig, DEBUG, overrides=[f"mixture={tmp_path / 'missing.json'}"])
    with pytest.raises(UserError, match="cannot read mixture file"):
        run_grid(base, ["fkl"], ["exact"], 1, tmp_path / "bench")
    assert not (tmp_path / "bench").exists()
