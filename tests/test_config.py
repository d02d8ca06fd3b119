from __future__ import annotations  # string annotations must still resolve

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from ui3d.config import (
    ConfigError,
    allow_nonfinite,
    check_ranges,
    dump_yaml,
    from_dict,
    load_config,
    lookup,
    merge,
    parse_overrides,
    to_dict,
)


@dataclass(frozen=True)
class Guidance:
    kind: Literal["sds", "vsd", "uni"] = "sds"
    cfg: float = 7.5
    steps: int = 1000
    t_range: tuple[float, float] = (0.02, 0.98)


@dataclass(frozen=True)
class Run:
    name: str
    seed: int = 0
    lr: float = 1e-3
    guidance: Guidance = field(default_factory=lambda: Guidance(cfg=100.0))
    sizes: tuple[int, ...] = (64, 128)
    negative: Optional[str] = None
    resume: str | None = "last"
    verbose: bool = False


@dataclass(frozen=True)
class Checked:
    n: int = 1

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


@dataclass(frozen=True)
class Outer:
    inner: Checked = Checked()


# --- from_dict: structure and types

def test_defaults_and_nested_section_from_mapping():
    cfg = from_dict(Run, {"name": "x", "guidance": {"kind": "vsd"}})
    assert cfg.guidance.kind == "vsd"
    # A partial section keeps the field's own default (cfg=100), not the class default (7.5).
    assert cfg.guidance.cfg == 100.0
    assert cfg.sizes == (64, 128) and cfg.negative is None and cfg.resume == "last"


def test_unknown_top_level_key_suggests_close_match():
    with pytest.raises(ConfigError, match=r"unknown config key 'sed'; did you mean 'seed'\?"):
        from_dict(Run, {"name": "x", "sed": 1})


def test_unknown_nested_key_names_dotted_path():
    with pytest.raises(ConfigError, match=r"'guidance\.cgf'; did you mean 'guidance\.cfg'\?"):
        from_dict(Run, {"name": "x", "guidance": {"cgf": 3.0}})


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"'guidance\.zzzz'; valid keys: kind, cfg, steps, t_range"):
        from_dict(Run, {"name": "x", "guidance": {"zzzz": 1}})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"seed": True}, r"config key 'seed': expected an int, got True \(bool\)"),
        ({"seed": 1.0}, r"config key 'seed': expected an int, got 1\.0 \(float\)"),
        ({"lr": False}, r"'lr': expected a float, got False \(bool\)"),
        ({"verbose": 1}, r"'verbose': expected a bool \(true/false\), got 1 \(int\)"),
        ({"guidance": {"cfg": "abc"}}, r"config key 'guidance\.cfg': expected a float, got 'abc' \(str\)"),
        ({"name": 5}, r"'name': expected a string, got 5 \(int\)"),
    ],
)
def test_wrong_types_rejected(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        from_dict(Run, {"name": "x", **data})


def test_literal_outside_choices_lists_them_and_suggests():
    with pytest.raises(ConfigError, match=r"'guidance\.kind': expected one of 'sds', 'vsd', 'uni', "
                                          r"got 'vds' \(str\); did you mean 'vsd'\?"):
        from_dict(Run, {"name": "x", "guidance": {"kind": "vds"}})


def test_literal_compares_types_not_just_values():
    @dataclass(frozen=True)
    class Level:
        level: Literal[0, 1] = 0

    assert from_dict(Level, {"level": 1}).level == 1
    with pytest.raises(ConfigError, match=r"expected one of 0, 1, got True \(bool\)"):
        from_dict(Level, {"level": True})


def test_int_accepted_for_float_and_becomes_float():
    cfg = from_dict(Run, {"name": "x", "lr": 1, "guidance": {"cfg": 7}})
    assert cfg.lr == 1.0 and type(cfg.lr) is float
    assert type(cfg.guidance.cfg) is float


def test_tuples_from_lists():
    cfg = from_dict(Run, {"name": "x", "sizes": [1, 2, 3], "guidance": {"t_range": [0, 0.5]}})
    assert cfg.sizes == (1, 2, 3) and isinstance(cfg.sizes, tuple)
    assert cfg.guidance.t_range == (0.0, 0.5)
    assert from_dict(Run, {"name": "x", "sizes": []}).sizes == ()


def test_tuple_errors_name_item_and_length():
    with pytest.raises(ConfigError, match=r"'sizes\[1\]': expected an int, got 'b' \(str\)"):
        from_dict(Run, {"name": "x", "sizes": [1, "b"]})
    with pytest.raises(ConfigError, match=r"'guidance\.t_range': expected a list of 2 items"):
        from_dict(Run, {"name": "x", "guidance": {"t_range": [0.1, 0.2, 0.3]}})
    with pytest.raises(ConfigError, match=r"'sizes': expected a list"):
        from_dict(Run, {"name": "x", "sizes": "64"})


def test_optional_accepts_none_and_checks_inner_type():
    cfg = from_dict(Run, {"name": "x", "negative": "blurry", "resume": None})
    assert cfg.negative == "blurry" and cfg.resume is None
    with pytest.raises(ConfigError, match=r"'negative': expected a string, got 3 \(int\)"):
        from_dict(Run, {"name": "x", "negative": 3})


def test_missing_required_field():
    with pytest.raises(ConfigError, match=r"config key 'name' is required \(a string\) but missing"):
        from_dict(Run, {"seed": 1})


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"'guidance': expected a mapping of Guidance fields, got 3"):
        from_dict(Run, {"name": "x", "guidance": 3})


def test_post_init_value_error_names_section():
    with pytest.raises(ConfigError, match=r"config key 'inner' \(Checked\): n must be >= 1, got 0"):
        from_dict(Outer, {"inner": {"n": 0}})


def test_path_fields_from_strings_and_back():
    @dataclass(frozen=True)
    class Out:
        folder: Path = Path("runs")

    cfg = from_dict(Out, {"folder": "a/b"})
    assert cfg.folder == Path("a/b") and to_dict(cfg) == {"folder": "a/b"}
    with pytest.raises(ConfigError, match=r"'folder': expected a path \(string\), got 3 \(int\)"):
        from_dict(Out, {"folder": 3})


def test_dict_typed_field_is_a_bug_not_a_config_error():
    @dataclass(frozen=True)
    class Loose:
        extra: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match="unsupported type"):
        from_dict(Loose, {"extra": {"a": 1}})


# --- overrides and merging

def test_parse_overrides_values_and_nesting():
    got = parse_overrides(
        ["lr=1e-3", "guidance.cfg=2E5", "guidance.t_range=[0.1, 0.9]", "seed=3",
         "verbose=true", "negative=null", "name=chair", "guidance.kind = vsd", "a.b.c=-1.5e+2"]
    )
    assert got == {
        "lr": 1e-3, "seed": 3, "verbose": True, "negative": None, "name": "chair",
        "guidance": {"cfg": 2e5, "t_range": [0.1, 0.9], "kind": "vsd"},
        "a": {"b": {"c": -150.0}},
    }
    assert type(got["lr"]) is float and type(got["guidance"]["cfg"]) is float


@pytest.mark.parametrize("item", ["seed", "=3", "a..b=1", ".a=1", "a.=1"])
def test_malformed_override_names_item(item):
    with pytest.raises(ConfigError, match=f"override {item!r}"):
        parse_overrides([item])


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": {"x": 1, "y": [1]}, "b": 2}
    out = merge(base, {"a": {"y": [3]}, "c": 4})
    assert out == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    out["a"]["x"] = 99
    assert base == {"a": {"x": 1, "y": [1]}, "b": 2}


# --- files

def test_load_config_layers_defaults_file_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: chair\nlr: 1e-4\nguidance:\n  cfg: 50\n  steps: 10\n")
    cfg = load_config(Run, path, ["guidance.steps=20", "sizes=[8]"], defaults={"seed": 7, "lr": 1.0})
    assert cfg.seed == 7 and cfg.lr == 1e-4  # file beats defaults, yaml `1e-4` is a float
    assert cfg.guidance.cfg == 50.0 and cfg.guidance.steps == 20 and cfg.sizes == (8,)


def test_override_of_unknown_key_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'guidance\.step'; did you mean 'guidance\.steps'\?"):
        load_config(Run, overrides=["name=x", "guidance.step=3"])


def test_yaml_round_trip_nested(tmp_path):
    cfg = Run(name="1e5", seed=2, lr=2.5e-7, guidance=Guidance(kind="uni", cfg=1.0, t_range=(0.1, 0.2)),
              sizes=(1,), negative="yes", resume=None, verbose=True)
    path = dump_yaml(cfg, tmp_path / "out" / "config.yaml")
    text = path.read_text()
    assert text.index("name") < text.index("seed") < text.index("guidance")  # field order, not sorted
    assert load_config(Run, path) == cfg  # '1e5' and 'yes' stay strings
    assert to_dict(cfg)["guidance"]["t_range"] == [0.1, 0.2]


def test_yaml_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"config file '.*list\.yaml' must be a mapping"):
        load_config(Run, path)


def test_missing_and_invalid_yaml_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*nope\.yaml' not found"):
        load_config(Run, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config file '.*bad\.yaml' is not valid YAML: .*line"):
        load_config(Run, bad)


def test_empty_yaml_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(Run, path, ["name=x"]) == Run(name="x")


# --- registries

def test_lookup_returns_entry_or_suggests():
    registry = {"fkl": 1, "rkl": 2, "js": 3}
    assert lookup(registry, "rkl", "divergence") == 2
    with pytest.raises(ConfigError) as err:
        lookup(registry, "fkll", "divergence")
    assert str(err.value) == "unknown divergence 'fkll'; did you mean 'fkl'? (choices: fkl, rkl, js)"
    with pytest.raises(ConfigError, match=r"^unknown divergence 'zzz' \(choices: fkl, rkl, js\)$"):
        lookup(registry, "zzz", "divergence")


# --- values: finite floats, 64-bit ints, ranges (a bad value fails at load, naming its key)

@dataclass(frozen=True)
class Bounded:
    resolution: int = 32
    prob: float = 0.5
    clip: float = 1.0
    limit: float = allow_nonfinite(math.inf)  # inf: no limit
    inner: Checked = Checked()

    def __post_init__(self):
        check_ranges(self, resolution=(1, 1024), prob=(0, 1), clip=(0, None))


@dataclass(frozen=True)
class Holder:
    bounded: Bounded = Bounded()


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "1e999"])
def test_non_finite_floats_are_refused_with_their_key(text):
    with pytest.raises(ConfigError, match=r"config key 'guidance\.cfg': expected a finite float"):
        load_config(Run, None, ["name=x", f"guidance.cfg={text}"])
    with pytest.raises(ConfigError, match=r"config key 'guidance\.t_range\[1\]': expected a finite float"):
        load_config(Run, None, ["name=x", f"guidance.t_range=[0.1, {text}]"])


def test_a_field_may_document_that_it_takes_inf():
    assert load_config(Bounded, None, ["limit=.inf"]).limit == math.inf
    assert Bounded().limit == math.inf


def test_numbers_too_large_for_their_type_name_the_key():
    huge = "9" * 401
    with pytest.raises(ConfigError, match=r"'seed': 9999.*does not fit a 64-bit integer"):
        load_config(Run, None, ["name=x", f"seed={huge}"])
    with pytest.raises(ConfigError, match=r"'lr': 9999.* is too large for a float"):
        load_config(Run, None, ["name=x", f"lr={huge}"])
    assert load_config(Run, None, ["name=x", f"seed={2**63 - 1}"]).seed == 2**63 - 1


@pytest.mark.parametrize(
    "override,message",
    [
        ("bounded.resolution=100000", "config key 'bounded.resolution': expected a value from 1 to 1024, got 100000"),
        ("bounded.prob=2.5", "config key 'bounded.prob': expected a value from 0 to 1, got 2.5"),
        ("bounded.clip=-1", "config key 'bounded.clip': expected >= 0, got -1.0"),
    ],
)
def test_range_checks_name_the_full_key_the_value_and_the_range(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(Holder, None, [override])
    assert str(err.value) == message
    assert load_config(Holder, None, ["bounded.prob=1", "bounded.clip=0"]).bounded.prob == 1.0  # bounds included


def test_deeply_nested_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 1000 + "]" * 1000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml' is not valid YAML: nested too deeply"):
        load_config(Run, path)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_overrides(["a=" + "[" * 1000 + "]" * 1000])


def test_config_errors_are_user_errors():
    from ui3d.errors import UserError

    assert issubclass(ConfigError, UserError) and issubclass(UserError, ValueError)
