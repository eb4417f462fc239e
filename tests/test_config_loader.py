"""Config precedence (defaults < YAML < --set < options) and every error path of the loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Optional

import pytest

from r1cli.config_loader import build, describe_fields, dump_yaml, load_config, parse_set
from r1cli.errors import ConfigError
from r1cli.stages.base_config import BaseConfig
from r1cli.stages.data_config import DataConfig
from r1cli.stages.eval_config import EvalConfig


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Inner:
    r: int = field(default=8, metadata={"help": "rank"})
    names: list[str] = field(default_factory=lambda: ["q"], metadata={"help": "names"})


@dataclass
class Cfg:
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    steps: int = field(default=10, metadata={"help": "steps"})
    name: str = field(default="x", metadata={"help": "name"})
    flag: bool = field(default=False, metadata={"help": "flag"})
    kind: Literal["a", "b"] = field(default="a", metadata={"help": "kind"})
    color: Color = field(default=Color.RED, metadata={"help": "color"})
    maybe: Optional[int] = field(default=None, metadata={"help": "optional"})
    inner: Inner = field(default_factory=Inner, metadata={"help": "nested"})
    tags: dict[str, float] = field(default_factory=dict, metadata={"help": "mapping"})

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")


def _yaml(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_precedence_defaults_yaml_set_options(tmp_path):
    p = _yaml(tmp_path, "lr: 0.5\nsteps: 3\nname: fromyaml\ninner:\n  r: 4\n")
    assert load_config(Cfg).lr == 1e-3
    c = load_config(Cfg, p)
    assert (c.lr, c.steps, c.name, c.inner.r) == (0.5, 3, "fromyaml", 4)
    c = load_config(Cfg, p, ["steps=7", "inner.names=[a,b]", "lr=3e-5"])
    assert (c.lr, c.steps, c.inner.r, c.inner.names) == (3e-5, 7, 4, ["a", "b"])
    c = load_config(Cfg, p, ["steps=7"], {"steps": 9, "name": None})
    assert c.steps == 9 and c.name == "fromyaml"  # None options do not override


def test_coercions():
    c = build(Cfg, {"flag": "yes", "kind": "b", "color": "blue", "maybe": "3", "tags": {"x": 1}, "name": 12})
    assert c.flag is True and c.kind == "b" and c.color is Color.BLUE and c.maybe == 3
    assert c.tags == {"x": 1.0} and c.name == "12"
    assert build(Cfg, {"maybe": None}).maybe is None
    assert build(Cfg, {"steps": 4.0}).steps == 4


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"lrr": 1}, "unknown config key 'lrr'"),
        ({"steps": "many"}, "steps: 'many'"),
        ({"steps": 1.5}, "steps: 1.5"),
        ({"flag": "perhaps"}, "flag"),
        ({"kind": "c"}, "'a', 'b'"),
        ({"color": "green"}, "'red', 'blue'"),
        ({"inner": {"rr": 1}}, "unknown config key 'inner.rr'"),
        ({"inner": 3}, "inner"),
        ({"steps": -1}, "steps must be >= 0"),
        ({"lr": [1]}, "lr"),
    ],
)
def test_errors_are_one_line_config_errors(values, needle):
    with pytest.raises(ConfigError) as e:
        build(Cfg, values)
    assert needle in e.value.message
    assert "\n" not in e.value.message


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError) as e:
        build(Cfg, {"step": 1})
    assert "did you mean 'steps'" in (e.value.hint or "")


def test_recipe_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Cfg, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Cfg, _yaml(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(Cfg, _yaml(tmp_path, "- 1\n- 2\n"))
    assert load_config(Cfg, _yaml(tmp_path, "")).steps == 10


def test_parse_set():
    assert parse_set(["a=1", "b.c=x", "d=[1,2]", "e=", "f=a=b"]) == {
        "a": 1,
        "b": {"c": "x"},
        "d": [1, 2],
        "e": "",
        "f": "a=b",
    }
    with pytest.raises(ConfigError, match="not key=value"):
        parse_set(["novalue"])
    with pytest.raises(ConfigError, match="empty key"):
        parse_set(["=3"])


def test_stage_configs_validate_and_document():
    with pytest.raises(ConfigError, match="k must be >= 1"):
        build(EvalConfig, {"k": 0})
    with pytest.raises(ConfigError, match="top_p"):
        build(EvalConfig, {"top_p": 1.5})
    with pytest.raises(ConfigError, match="use_peft"):
        build(EvalConfig, {"load_in_4bit": True})
    with pytest.raises(ConfigError, match="n must be > 0"):
        build(DataConfig, {"n": 0})
    for cls in (BaseConfig, DataConfig, EvalConfig):
        for name, _tp, _default, help_ in describe_fields(cls):
            assert help_, f"{cls.__name__}.{name} has no help text"
    text = dump_yaml(build(EvalConfig, {"k": 2}))
    assert "k: 2" in text


def test_yaml_12_booleans_keep_no_and_off_as_strings(tmp_path):
    """`save_strategy: no` / `--set report_to=off` are TRL string options: YAML 1.1 would read them as False."""
    c = load_config(Cfg, _yaml(tmp_path, "name: no\nflag: yes\n"), ["inner.names=[off, on]"])
    assert c.name == "no" and c.flag is True and c.inner.names == ["off", "on"]
    assert load_config(Cfg, None, ["name=off", "flag=true"]).name == "off"
