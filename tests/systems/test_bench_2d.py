"""`ui3d bench distill2d` reads the config's mixture file (it used to run the ring whatever the file said)."""

import json

import pytest

from systems.bench_2d import folder_name, parse_divergences, run_grid
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


def test_divergences_are_the_tables_names_or_alphas_and_bad_ones_are_named():
    assert parse_divergences(" fkl, alpha:-1 ,softened_rkl") == ["fkl", "alpha:-1", "softened_rkl"]
    assert folder_name("alpha:-1") == "alpha-1" and folder_name("fkl") == "fkl"
    for text, needle in (("fkl,chi3", "did you mean 'chi2'"), ("alpha:0", "alpha not in"), (" , ", "empty")):
        with pytest.raises(UserError, match=needle):
            parse_divergences(text)


def test_an_alpha_divergence_runs_in_a_folder_any_file_system_takes(tmp_path):
    base = resolve(Distill2DConfig, DEBUG)
    (result,) = run_grid(base, ["alpha:-1"], ["exact"], 1, tmp_path / "bench")
    assert result["divergence"] == "alpha:-1"
    assert (tmp_path / "bench" / "alpha-1_exact_s0" / "metrics.json").is_file()
