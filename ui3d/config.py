"""Typed configs, checked at load.

A config is a frozen dataclass (sections are nested dataclasses). YAML files and `a.b=value`
overrides are merged as plain dicts, then `from_dict` builds the dataclass strictly: unknown keys
and wrong types fail at load with a one-line message, not deep inside a training run.
A `kind: str` field picks a component from a plain dict with `lookup`.

Every float a file or an override gives must be finite (`.inf` and `.nan` are refused) unless its
field says otherwise with `allow_nonfinite`; `check_ranges` is the range check of `__post_init__`s,
and its errors name the full dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from ui3d.errors import UserError, clip
from ui3d.io import atomic_write_text

T = TypeVar("T")


class ConfigError(UserError):
    """A config file, section or override is invalid; the message says which and why."""


class FieldValueError(ValueError):
    """A `__post_init__` check that failed on one field; `from_dict` names its full dotted key."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name, self.detail = name, message


_NONFINITE_OK = "allow_nonfinite"


def allow_nonfinite(default: float) -> Any:
    """A float field that may be `.inf` or `.nan` (its comment says what that means)."""
    return dataclasses.field(default=default, metadata={_NONFINITE_OK: True})


Bounds = tuple[float | None, float | None]


def check_ranges(cfg: Any, **bounds: Bounds) -> None:
    """`check_ranges(self, resolution=(8, 1024), grad_clip=(0, None))`: each named field within its
    closed range (None: no bound on that side), else a FieldValueError naming it, its value and the range."""
    for name, (low, high) in bounds.items():
        value = getattr(cfg, name)
        if (low is not None and value < low) or (high is not None and value > high):
            raise FieldValueError(name, f"expected {_range_words(low, high)}, got {value!r}")


def _range_words(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"a value from {low} to {high}"
    return f">= {low}" if low is not None else f"<= {high}"


# --- YAML: PyYAML follows YAML 1.1, where `1e-3` and `2E5` are strings. Add a resolver so
# scientific notation is a float, both when loading and when deciding what to quote on dump.
_SCI_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _SCI_FLOAT, list("-+0123456789"))


MAX_INT = 2**63 - 1
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; a bigger one is not a config


def _yaml_load(text: str) -> Any:
    """YAML, where nesting too deep for the parser is a YAML error like any other."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


# --- messages

def _where(key: str) -> str:
    return f"config key '{key}'" if key else "config"


def _got(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _expected(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"{_where(key)}: expected {_describe(tp)}, got {_got(value)}")


def _describe(tp: Any) -> str:
    """What a value of type `tp` looks like, in the words of a YAML file."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    names = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string",
             Path: "a path (string)"}
    if tp in names:
        return names[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts + (["null"] if type(None) in args else []))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list (each item {_describe(args[0])})"
        return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    return f"a {getattr(tp, '__name__', tp)}"


# --- building a dataclass from a dict

def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _unknown_key(where: str, key: Any, valid: list[str]) -> ConfigError:
    close = get_close_matches(str(key), valid, n=1)
    valid_keys = "valid keys: " + ", ".join(valid)
    hint = f"did you mean '{_join(where, close[0])}'?" if close else valid_keys
    return ConfigError(f"unknown config key '{clip(_join(where, str(key)))}'; {hint}")


def _convert(value: Any, tp: Any, key: str, finite: bool = True) -> Any:
    """Check `value` against the annotation `tp`; convert only where nothing is lost. `finite`:
    floats must be finite (a field's `allow_nonfinite` turns it off)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[T]: let T's own, more precise error through
            return _convert(value, options[0], key, finite)
        for option in options:
            try:
                return _convert(value, option, key, finite)
            except ConfigError:
                continue
        raise _expected(key, tp, value)
    if origin is Literal:
        # Compare types too: `True == 1`, yet `true` is no choice of Literal[0, 1].
        if any(value == a and type(value) is type(a) for a in args):
            return value
        words = [a for a in args if isinstance(a, str)]
        close = get_close_matches(value, words, n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{_where(key)}: expected {_describe(tp)}, got {_got(value)}{hint}")
    if origin is tuple or tp is tuple:
        return _convert_tuple(value, tp, key, finite)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=key)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -MAX_INT <= value <= MAX_INT:
            raise ConfigError(f"{_where(key)}: {_got(value)} does not fit a 64-bit integer")
    elif tp is float:
        # An int is a lossless float (`cfg: 7`); a bool is not a number here.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = _float(value, key) if ok else value
        if ok and finite and not math.isfinite(value):
            raise ConfigError(f"{_where(key)}: expected a finite float, got {value!r} (.inf and .nan are refused)")
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is Path:
        ok = isinstance(value, (str, Path))
        value = Path(value) if ok else value
    else:  # dict/list fields are left out on purpose: sections are dataclasses (rule 4)
        raise TypeError(f"config field '{key}' has an unsupported type {tp!r}")
    if not ok:
        raise _expected(key, tp, value)
    return value


def _float(value: int | float, key: str) -> float:
    try:
        return float(value)
    except OverflowError:  # a 400-digit integer
        raise ConfigError(f"{_where(key)}: {_got(value)} is too large for a float") from None


def _convert_tuple(value: Any, tp: Any, key: str, finite: bool = True) -> tuple:
    args = typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _expected(key, tp, value)
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    elif not args:
        item_types = [Any] * len(value)
    elif len(args) != len(value):
        raise _expected(key, tp, value)
    else:
        item_types = list(args)
    return tuple(_convert(v, t, f"{key}[{i}]", finite) for i, (v, t) in enumerate(zip(value, item_types)))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def from_dict(cls: type[T], data: Mapping, *, where: str = "") -> T:
    """Build the dataclass `cls` from `data`, rejecting unknown keys and wrong types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"from_dict needs a dataclass, got {cls!r}")
    if not isinstance(data, Mapping):
        raise _expected(where, cls, data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise _unknown_key(where, key, list(fields))
    kwargs = {}
    for name, f in fields.items():
        key, default = _join(where, name), _field_default(f)
        if name in data:
            value = data[name]
            # A partial section updates the field's default instance, not its class defaults.
            if isinstance(value, Mapping) and dataclasses.is_dataclass(default) \
                    and type(default) is hints[name]:
                value = merge(to_dict(default), value)
            kwargs[name] = _convert(value, hints[name], key, finite=not f.metadata.get(_NONFINITE_OK, False))
        elif default is dataclasses.MISSING:
            raise ConfigError(f"{_where(key)} is required ({_describe(hints[name])}) but missing")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except FieldValueError as e:
        raise ConfigError(f"{_where(_join(where, e.name))}: {e.detail}") from e
    except ValueError as e:  # a __post_init__ check; say which section it came from
        raise ConfigError(f"{_where(where)} ({cls.__name__}): {e}") from e


# --- dicts, files and overrides

def merge(base: Mapping, override: Mapping) -> dict:
    """Deep merge into a new dict: nested mappings merge, anything else in `override` wins."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: typing.Iterable[str]) -> dict:
    """`["guidance.cfg=7.5", "seed=1"]` -> `{"guidance": {"cfg": 7.5}, "seed": 1}`.
    Values are YAML (`3`, `1e-3`, `true`, `[1, 2]`, `null`); a bare word stays a string."""
    out: dict = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(f"override {clip(item)!r}: expected key=value, e.g. guidance.cfg=7.5")
        try:
            value = _yaml_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            problem = _yaml_problem(e)
            raise ConfigError(f"override {clip(item)!r}: invalid YAML value ({problem})") from None
        node = out
        for part in parts[:-1]:  # a later `a.b=..` replaces an earlier scalar `a=..`
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def _yaml_problem(e: yaml.YAMLError) -> str:
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def read_yaml(path: str | Path) -> dict:
    """A YAML file of keys (empty = {}); ConfigError names the file when it is missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file '{path}' is {path.stat().st_size} bytes; a config holds at most {MAX_CONFIG_BYTES}")
    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{path}' is not valid YAML: {_yaml_problem(e)}") from None
    if data is None:  # an empty file means "all defaults"
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must be a mapping of keys, got {_got(data)}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Iterable[str] = (),
                defaults: Mapping | None = None) -> T:
    """defaults <- YAML file <- `key=value` overrides, then checked into `cls`."""
    data = dict(defaults or {})
    if path is not None:
        data = merge(data, read_yaml(path))
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def to_dict(cfg: Any) -> Any:
    """Plain Python for YAML/JSON: dataclasses as dicts, tuples as lists, paths as strings."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def dump_yaml(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config atomically; `load_config(type(cfg), path) == cfg`."""
    text = yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, text)


def lookup(registry: Mapping[str, T], kind: str, what: str) -> T:
    """`registry[kind]`, or a ConfigError that names the choices and the closest one."""
    try:
        return registry[kind]
    except (KeyError, TypeError):
        pass
    choices = [str(k) for k in registry]
    close = get_close_matches(str(kind), choices, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"unknown {what} '{kind}'{hint} (choices: {', '.join(choices)})")
