"""Plan: run ids are stable, sensitive to anything that changes training, blind to evaluation settings."""

from __future__ import annotations

from typing import Any

import pytest

from emergence.errors import UserError
from emergence.sweep.config import parse_study
from emergence.sweep.plan import canonical_json, eval_key_of, plan_study, run_id_of

from .conftest import tiny_study_dict


def _ids(data: dict[str, Any], overrides: list[str] | None = None) -> list[str]:
    return [s.run_id for s in plan_study(parse_study(data, overrides or []))]


def test_members_times_seeds(study_dict: dict[str, Any]) -> None:
    specs = plan_study(parse_study(study_dict))
    assert [(s.member, s.seed) for s in specs] == [("small", 0), ("small", 1), ("large", 0), ("large", 1)]
    assert len({s.run_id for s in specs}) == 4
    assert all(len(s.run_id) == 12 for s in specs)
    assert specs[0].n_params_non_embedding < specs[2].n_params_non_embedding


def test_run_id_is_stable(study_dict: dict[str, Any]) -> None:
    assert _ids(study_dict) == _ids(tiny_study_dict())
    # Key order and spelling out a default do not change the resolved config.
    shuffled = dict(reversed(list(study_dict.items())))
    assert _ids(shuffled) == _ids(study_dict)
    assert _ids(study_dict, ["family.base.dropout=0.0"]) == _ids(study_dict)


@pytest.mark.parametrize(
    "override",
    ["train.lr=0.01", "budget.steps=5", "tasks[0]", "family.base.n_ctx=20", "data.n_train=50"],
)
def test_run_id_changes_with_training_config(study_dict: dict[str, Any], override: str) -> None:
    if override == "tasks[0]":
        changed = tiny_study_dict(tasks=[{"name": "addition", "options": {"digits": 2}}])
        assert set(_ids(changed)).isdisjoint(_ids(study_dict))
        return
    assert set(_ids(study_dict, [override])).isdisjoint(_ids(study_dict))


def test_seed_changes_only_its_runs(study_dict: dict[str, Any]) -> None:
    before = _ids(study_dict)
    after = _ids(study_dict, ["seeds=[0, 2]"])
    assert before[0] == after[0] and before[2] == after[2]
    assert before[1] != after[1]


def test_eval_settings_do_not_change_run_ids(study_dict: dict[str, Any]) -> None:
    a = parse_study(study_dict)
    b = parse_study(study_dict, ["eval.n_examples=7"])
    assert [s.run_id for s in plan_study(a)] == [s.run_id for s in plan_study(b)]
    assert eval_key_of(a) != eval_key_of(b)


def test_canonical_json_and_hash() -> None:
    assert canonical_json({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'
    assert run_id_of({"a": 1}) == run_id_of({"a": 1}) != run_id_of({"a": 2})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_geometric_family_and_compute_budget() -> None:
    data = tiny_study_dict(
        family={"base": {"n_ctx": 16}, "geometric": {"min_params": 1000, "max_params": 100000, "n": 3}},
        seeds=[0],
        budget={"kind": "tokens_per_param", "tokens_per_param": 2},
    )
    specs = plan_study(parse_study(data))
    sizes = [s.n_params_non_embedding for s in specs]
    assert sizes == sorted(sizes) and sizes[-1] > 20 * sizes[0]
    for s in specs:
        assert s.run_config["train"]["tokens"] == 2 * s.n_params_non_embedding
        assert s.run_config["train"]["steps"] is None


def test_bad_member_field_names_member(study_dict: dict[str, Any]) -> None:
    study_dict["family"]["members"][1]["d_modle"] = 3
    with pytest.raises(UserError, match=r"members\[1\].*d_modle"):
        plan_study(parse_study(study_dict))


def test_budget_in_train_block_is_refused(study_dict: dict[str, Any]) -> None:
    with pytest.raises(UserError, match=r"train\.steps"):
        plan_study(parse_study(study_dict, ["train.steps=3"]))


def test_unknown_preset_suggests(study_dict: dict[str, Any]) -> None:
    study_dict["family"]["members"] = ["nano", "micor"]
    with pytest.raises(UserError, match="did you mean 'micro'"):
        plan_study(parse_study(study_dict))


def test_several_tasks_train_on_a_mixture() -> None:
    data = tiny_study_dict(
        tasks=[{"name": "addition", "options": {"digits": 1}, "weight": 2}, "multiplication"], seeds=[0]
    )
    spec = plan_study(parse_study(data))[0]
    assert spec.run_config["data"]["task"] == "mixture"
    components = spec.run_config["data"]["task_options"]["tasks"]
    assert [(c["name"], c["weight"]) for c in components] == [("addition", 2.0), ("multiplication", 1.0)]


def test_tracking_reaches_the_runs_but_not_their_ids(study_dict: dict[str, Any]) -> None:
    plain = plan_study(parse_study(study_dict))
    tracked = plan_study(parse_study(study_dict, ["tracking={tensorboard: true}"]))
    assert [s.run_id for s in tracked] == [s.run_id for s in plain]
    assert all(s.run_config["tracking"]["tensorboard"] is True for s in tracked)
    assert all(s.run_config["tracking"]["tensorboard"] is False for s in plain)
    # The trainer accepts what the plan hands it.
    from emergence.train.config import run_config_from_dict

    assert run_config_from_dict(tracked[0].run_config).tracking.tensorboard is True


def test_hf_entries_plan_evaluation_only_runs(study_dict: dict[str, Any]) -> None:
    from emergence.sweep.plan import hf_step

    hf = [
        {"name": "p70m", "path": "models/p70m", "revision": "step3000"},
        {"name": "p70m", "path": "models/p70m", "revision": "step143000"},
        {"name": "p160m", "path": "models/p160m"},
    ]
    family = {**study_dict["family"], "hf": hf}
    specs = plan_study(parse_study(tiny_study_dict(family=family)))
    trained, evaluated = specs[:4], specs[4:]
    assert not any(s.is_hf for s in trained) and all(s.is_hf for s in evaluated)
    assert [(s.member, s.seed, s.member_index) for s in evaluated] == [
        ("p70m", 0, 2),
        ("p70m", 0, 2),
        ("p160m", 0, 3),
    ]
    assert [s.run_config["hf"]["step"] for s in evaluated] == [3000, 143000, 0]
    # Ids hash the entry: the trained runs keep theirs, and an edited entry gets a new one.
    assert [s.run_id for s in trained] == _ids(study_dict)
    hf[2]["revision"] = "main"
    again = plan_study(parse_study(tiny_study_dict(family={**study_dict["family"], "hf": hf})))
    assert [s.run_id for s in again[4:6]] == [s.run_id for s in evaluated[:2]]
    assert again[6].run_id != evaluated[2].run_id
    assert hf_step(None, "checkpoints/step_0100") == 100 and hf_step("main", None) is None


def test_hf_only_family_needs_no_budget() -> None:
    data = tiny_study_dict(family={"hf": [{"name": "m", "path": "x"}]})
    del data["budget"]
    assert [s.member for s in plan_study(parse_study(data))] == ["m"]
    with pytest.raises(UserError, match="budget"):
        parse_study({k: v for k, v in tiny_study_dict().items() if k != "budget"})
    with pytest.raises(UserError, match=r"family\.hf\[0\]\.name"):
        plan_study(
            parse_study(
                tiny_study_dict(
                    family={**tiny_study_dict()["family"], "hf": [{"name": "small", "path": "x"}]}
                )
            )
        )


def test_tracking_guard_for_a_trainer_without_the_field(study_dict: dict[str, Any]) -> None:
    """Before RunConfig had `tracking`, plans leave it out, and a study that sets it is told why it cannot."""
    from dataclasses import dataclass

    from emergence.sweep.plan import _tracking_section

    @dataclass(frozen=True)
    class OldRunConfig:
        model: dict[str, Any]

    assert _tracking_section(parse_study(study_dict), OldRunConfig) is None
    with pytest.raises(UserError, match="tracking"):
        _tracking_section(parse_study(study_dict, ["tracking={mlflow: true}"]), OldRunConfig)
