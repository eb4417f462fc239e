"""Config loading: dataclass defaults < recipe YAML < `--set key=value` < explicit CLI options.

Like TRL's `TrlParser`, unknown keys are rejected; unlike it, every error is one line that names the key, the
value and what is allowed (raised as `ConfigError`, exit 2). Works on any dataclass, including TRL's config
classes, which the trainer stages subclass.

Values from `--set` are parsed as YAML scalars/flow collections (`--set lr=3e-5`, `--set lora.target_modules=[q_proj,v_proj]`),
then coerced to the field's annotated type. Nested dataclass fields are addressed with dots (`lora.r=16`).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from r1cli.errors import ConfigError

_MISSING = object()



_LOADER: Any = None


def _loader() -> Any:
    """A SafeLoader with YAML 1.2 booleans: only true/false (any case) are booleans, so `save_strategy: no` or
    `--set report_to=off` stay strings, as the TRL options that take them expect (YAML 1.1 read them as False)."""
    global _LOADER
    if _LOADER is None:
        import re

        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.yaml_implicit_resolvers = {
            k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
            for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
        )
        _LOADER = Loader
    return _LOADER

def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # forward references we cannot resolve: fall back to the raw annotations
        hints: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for f in getattr(klass, "__dataclass_fields__", {}).values():
                hints[f.name] = f.type
        return hints


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple, typing.Sequence):
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


class _CoerceError(Exception):
    pass


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (from YAML or `--set`) to the annotated type `tp`, or raise ConfigError."""
    try:
        return _coerce(value, tp, key)
    except _CoerceError as e:
        raise ConfigError(
            f"{key}: {value!r} is not valid ({e})" if str(e) else f"{key}: {value!r} is not {_describe(tp)}",
            hint=f"{key} takes {_describe(tp)}",
        ) from None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    if tp is Any or tp is object or isinstance(tp, str):
        return value
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _coerce(value, get_args(tp)[0], key)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        # exact type matches first, so "3" stays a str in Union[str, int] and 3 stays an int
        for a in args:
            if a is not type(None) and isinstance(a, type) and not issubclass(a, enum.Enum) and type(value) is a:
                return value
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except (_CoerceError, ConfigError):
                continue
        raise _CoerceError(f"expected {_describe(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise _CoerceError("expected null")
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        # "--set x=1" where the literal is "1"
        if isinstance(value, (int, float, bool)) and str(value) in allowed:
            return str(value)
        raise _CoerceError("expected one of " + ", ".join(repr(a) for a in allowed))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            raise _CoerceError("expected one of " + ", ".join(repr(m.value) for m in tp)) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise _CoerceError("expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise _CoerceError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    raise _CoerceError("expected an integer") from None
                if f.is_integer():
                    return int(f)
        raise _CoerceError("expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise _CoerceError("expected a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _CoerceError("expected a number") from None
        raise _CoerceError("expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _CoerceError("expected a string")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _CoerceError("expected a path")
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise _CoerceError("expected a list")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        out = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple or tp is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _CoerceError("expected a mapping")
        args = get_args(tp)
        vtp = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vtp, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _CoerceError("expected a mapping of " + tp.__name__ + " fields")
        return build(tp, value, prefix=f"{key}.")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except Exception:
            raise _CoerceError(f"expected {_describe(tp)}") from None
    return value


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a (possibly nested) mapping; unknown keys and bad values -> ConfigError."""
    hints = _type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in values.items():
        if k not in known:
            close = _closest(k, list(known))
            raise ConfigError(
                f"unknown config key '{prefix}{k}'",
                hint=(f"did you mean '{prefix}{close}'? " if close else "")
                + f"`r1 <stage> --print-config` lists the keys of {cls.__name__}",
            )
        kwargs[k] = coerce(v, hints.get(k, Any), prefix + k)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{prefix or cls.__name__ + ': '}{msg}") from None


def _closest(name: str, options: list[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(name, options, n=1, cutoff=0.75)
    return m[0] if m else None


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """`["a=1", "lora.r=8"]` -> `{"a": 1, "lora": {"r": 8}}` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not key=value", hint="write e.g. --set learning_rate=3e-5")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r} has an empty key")
        try:
            value = yaml.load(raw, Loader=_loader()) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _assign(out, key.split("."), value)
    return out


def _assign(d: dict[str, Any], path: list[str], value: Any) -> None:
    for p in path[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            nxt = d[p] = {}
        d = nxt
    d[path[-1]] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_recipe(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe {str(p)!r} does not exist", hint="pass a YAML file, e.g. recipes/tiny/rl.yaml")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_loader())
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"recipe {str(p)!r} is not UTF-8 text (byte {e.start})", hint="pass a YAML text file"
        ) from None
    except OSError as e:
        raise ConfigError(f"recipe {str(p)!r} cannot be read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"recipe {str(p)!r} is not valid YAML{where}", hint="check indentation and quoting") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {str(p)!r} must be a mapping of config keys, got {type(data).__name__}")
    return data


def load_config(
    cls: type,
    recipe: str | Path | None = None,
    sets: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Resolve a stage config: dataclass defaults < recipe YAML < `--set` < explicit CLI options (non-None)."""
    return build(cls, config_values(recipe, sets, overrides))


def config_values(
    recipe: str | Path | None = None, sets: list[str] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The merged recipe, `--set` and option values, before any config class is involved: a recipe that is missing
    or not YAML, or a `--set` without `=`, fails here without importing the trainer configs (torch, TRL)."""
    values = read_recipe(recipe)
    values = deep_merge(values, parse_set(sets))
    return deep_merge(values, {k: v for k, v in (overrides or {}).items() if v is not None})


def to_plain(obj: Any) -> Any:
    """A YAML/JSON-safe view of a config (enums -> values, paths -> str, dataclasses -> dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False, allow_unicode=True)


def describe_fields(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for each init field: used by `--print-config` and the docs."""
    hints = _type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        rows.append((f.name, _describe(hints.get(f.name, Any)), default, f.metadata.get("help", "")))
    return rows
