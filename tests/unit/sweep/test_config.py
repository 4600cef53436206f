"""Study config: validation errors name the field; shorthands; built-in study names."""

from __future__ import annotations

from typing import Any

import pytest

from emergence.errors import UserError
from emergence.studies import builtin_studies, resolve_study
from emergence.sweep.config import StudyConfig, load_study, parse_study, validate_study

from .conftest import tiny_study_dict


def test_parses_tiny_study(study_dict: dict[str, Any]) -> None:
    cfg = parse_study(study_dict)
    assert isinstance(cfg, StudyConfig)
    assert cfg.seeds == (0, 1)
    assert cfg.tasks[0].name == "addition"
    assert cfg.executor.workers == 1


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("budget.steps=fast", "budget.steps"),
        ("executor.workers=0", "workers"),
        ("seeds=[1, 1]", "seeds"),
        ("budget.kind=weeks", "budget.kind"),
        ("family.geometric.n=3", "geometric"),
        ("budget.kind=tokens", "tokens"),
        # the study's budget is in steps: an amount of another kind would be ignored
        ("budget.tokens_per_param=20", "tokens_per_param: set, but kind is 'steps'"),
        ("executor.wokers=2", "wokers"),
    ],
)
def test_errors_name_the_field(study_dict: dict[str, Any], override: str, field: str) -> None:
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        parse_study(study_dict, [override])


def test_unknown_top_level_field_suggests(study_dict: dict[str, Any]) -> None:
    study_dict["seed"] = [0]
    with pytest.raises(UserError, match="did you mean 'seeds'"):
        parse_study(study_dict)


def test_task_shorthands() -> None:
    cfg = parse_study(tiny_study_dict(tasks="addition"))
    assert [t.name for t in cfg.tasks] == ["addition"]
    cfg = parse_study(
        tiny_study_dict(tasks=["addition", {"name": "multiplication", "options": {"digits": 1}}])
    )
    assert [t.name for t in cfg.tasks] == ["addition", "multiplication"]


def test_duplicate_tasks_rejected() -> None:
    with pytest.raises(UserError, match="tasks"):
        parse_study(tiny_study_dict(tasks=["addition", "addition"]))


def test_builtin_default_resolves_and_unknown_suggests() -> None:
    assert "default" in builtin_studies()
    assert resolve_study(None).name == "default.yaml"
    assert resolve_study("default") == resolve_study(None)
    with pytest.raises(UserError, match="did you mean 'default'"):
        resolve_study("defualt")
    with pytest.raises(UserError, match="not found"):
        resolve_study("no/such/study.yaml")


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"mechanisms": {"enabled": True, "head_spn": 8}}, r"mechanisms.*head_spn"),
        ({"mechanisms": {"steps": "some"}}, r"mechanisms\.steps"),
        ({"mechanisms": {"enabled": "yes"}}, r"mechanisms\.enabled"),
        ({"mechanisms": {"event_rate": 2.0}}, r"mechanisms.*event_rate"),
        ({"tracking": {"tensorbord": True}}, r"tracking.*tensorbord"),
    ],
)
def test_mechanisms_and_tracking_sections_are_validated(section: dict[str, Any], field: str) -> None:
    from emergence.sweep.config import validate_study

    with pytest.raises(UserError, match=field):
        validate_study(parse_study(tiny_study_dict(**section)))


def test_mechanisms_section_defaults() -> None:
    from emergence.sweep.config import mechanisms_section

    m = mechanisms_section(parse_study(tiny_study_dict()))
    assert (m.enabled, m.steps) == (False, "final")
    m = mechanisms_section(parse_study(tiny_study_dict(mechanisms={"enabled": True, "heads": False})))
    assert (m.enabled, m.config.heads) == (True, False)


@pytest.mark.parametrize("name", builtin_studies())
def test_every_builtin_study_loads_and_validates(name: str) -> None:
    study = load_study(resolve_study(name))
    validate_study(study)
    assert study.name == name  # the file name is the name `emergence run` takes
