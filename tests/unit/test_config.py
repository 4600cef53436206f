"""The config loader: types, Literal choices, unknown keys with did-you-mean, dotted overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from emergence.config import apply_overrides, from_dict, load_yaml_dict, to_dict
from emergence.errors import UserError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    steps: int = 10
    schedule: Literal["cosine", "constant"] = "cosine"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    shots: tuple[int, ...] = (0,)
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must not be empty")


def test_builds_nested_and_coerces() -> None:
    cfg = from_dict(Outer, {"name": "a", "inner": {"lr": "3e-4", "steps": 5.0}, "shots": [0, 4]})
    assert cfg.inner.lr == pytest.approx(3e-4)
    assert cfg.inner.steps == 5 and isinstance(cfg.inner.steps, int)
    assert cfg.shots == (0, 4)
    assert to_dict(cfg) == {
        "name": "a",
        "inner": {"lr": 3e-4, "steps": 5, "schedule": "cosine"},
        "shots": [0, 4],
        "seed": None,
    }


def test_unknown_key_names_field_with_suggestion() -> None:
    with pytest.raises(UserError, match=r"inner: unknown field 'stepz' \(did you mean 'steps'\?\)"):
        from_dict(Outer, {"inner": {"stepz": 3}})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"inner": {"lr": "fast"}}, r"inner\.lr: expected a number"),
        ({"inner": {"steps": 1.5}}, r"inner\.steps: expected an integer"),
        ({"inner": {"schedule": "cosin"}}, r"inner\.schedule: value 'cosin' \(did you mean 'cosine'\?\)"),
        ({"shots": ["a"]}, r"shots\[0\]: expected an integer"),
        ({"name": ""}, r"name: must not be empty"),
        ({"inner": 3}, r"inner: expected a mapping"),
    ],
)
def test_bad_values_name_the_field(data: dict, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        from_dict(Outer, data)


def test_overrides_parse_yaml_values_and_do_not_mutate() -> None:
    base = {"inner": {"lr": 1e-3}}
    out = apply_overrides(base, ["inner.lr=3e-4", "inner.steps=7", "shots=[0, 4]", "name=b"])
    assert base == {"inner": {"lr": 1e-3}}
    cfg = from_dict(Outer, out)
    assert (cfg.inner.lr, cfg.inner.steps, cfg.shots, cfg.name) == (3e-4, 7, (0, 4), "b")


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1"])
def test_malformed_override(bad: str) -> None:
    with pytest.raises(UserError):
        apply_overrides({}, [bad])


def test_override_through_scalar_is_an_error() -> None:
    with pytest.raises(UserError, match="not a mapping"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_yaml_errors_name_the_file(tmp_path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match=r"bad\.yaml: malformed YAML"):
        load_yaml_dict(p)
    with pytest.raises(UserError, match="file not found"):
        load_yaml_dict(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_yaml_dict(tmp_path / "list.yaml")
