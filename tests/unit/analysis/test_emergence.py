"""The per task × metric analysis: mirage check, verdicts, prediction, PassUntil, length prediction, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emergence.analysis.emergence import (
    AnalysisConfig,
    analyze_results,
    analyze_study,
    load_config,
    predict_exact_match,
)
from emergence.analysis.fits import predict_holdout
from emergence.analysis.scaling import passuntil_fit
from emergence.errors import UserError

N = np.logspace(4, 8, 9)  # nine members, half a decade apart
FAST = AnalysisConfig(n_boot=40, fit_time_axis=False)


def _row(i: int, seed: int, metric: str, value: float, step: int = 1000, **extra: Any) -> dict[str, Any]:
    n = float(N[i])
    return dict(
        study="synthetic", run_id=f"m{i}-s{seed}", member=f"m{i}", n_params=n, n_params_non_embedding=0.9 * n,
        flops=6 * n * step * 512, step=step, tokens_seen=step * 512, seed=seed, task="addition", shots=0,
        metric=metric, value=value, stderr=0.01, n=500, **extra,
    )  # fmt: skip


def mirage_family(answer_len: int = 10, seeds: int = 3, noise: float = 0.005) -> pd.DataFrame:
    """Schaeffer et al.: token accuracy p rises linearly in log N; exact match of an L-token answer is p^L."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N.size):
        for s in range(seeds):
            p = float(np.clip(0.5 + 0.49 * i / (N.size - 1) + rng.normal(0, noise), 0, 1))
            rows.append(_row(i, s, "token_accuracy", p))
            rows.append(_row(i, s, "exact_match", p**answer_len))
            rows.append(_row(i, s, "answer_logprob", answer_len * math.log(p)))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def mirage() -> dict[str, Any]:
    return analyze_results(mirage_family(), FAST)


def _entry(result: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(e for e in result["entries"] if e["metric"] == metric)


def test_mirage_jump_in_exact_match_smooth_in_token_accuracy(mirage: dict[str, Any]) -> None:
    em, tok = _entry(mirage, "exact_match"), _entry(mirage, "token_accuracy")
    assert em["verdict"]["verdict"] == "emergent"
    assert all(em["verdict"]["criteria"].values())
    assert tok["verdict"]["verdict"] == "smooth"
    assert _entry(mirage, "answer_logprob")["verdict"]["verdict"] != "emergent"
    # Exact match is far more abrupt than token accuracy by BIG-bench breakthroughness.
    b_em = em["bigbench"]["n_params"]["breakthroughness"]
    b_tok = tok["bigbench"]["n_params"]["breakthroughness"]
    assert b_em > 1.5 * b_tok
    (check,) = mirage["mirage"]
    assert check["outcome"] == "mirage" and check["jump_survives"] is False
    (task,) = mirage["tasks"]
    assert task["verdict"] == "mirage"
    assert task["summary"].startswith("smooth under answer_logprob; emergent under exact_match at ~")
    assert "params [" in task["summary"]
    # The EM threshold sits where p^10 climbs, in the top decade of the family.
    th = em["verdict"]["threshold"]
    assert 7.0 < th["log10_x0"] <= 8.0
    assert th["ci"] is not None and th["ci"][0] <= th["x0"] * 1.0001


def test_real_jump_survives_continuous_metric() -> None:
    rng = np.random.default_rng(1)
    rows = []
    u = np.log10(N)
    for i in range(N.size):
        for s in range(3):
            q = 1 / (1 + math.exp(-6 * (u[i] - 6.5)))  # the ability itself switches on
            rows.append(_row(i, s, "exact_match", float(np.clip(q + rng.normal(0, 0.01), 0, 1))))
            rows.append(
                _row(i, s, "token_accuracy", float(np.clip(0.02 + 0.97 * q + rng.normal(0, 0.01), 0, 1)))
            )
    out = analyze_results(pd.DataFrame(rows), FAST)
    assert out["mirage"][0]["outcome"] == "robust" and out["mirage"][0]["jump_survives"] is True
    assert out["tasks"][0]["verdict"] == "emergent"
    assert abs(_entry(out, "exact_match")["fits"]["n_params"]["threshold"]["log10_x0"] - 6.5) < 0.15


def test_absent_and_smooth_verdicts() -> None:
    rng = np.random.default_rng(2)
    rows = []
    for i in range(N.size):
        for s in range(2):
            rows.append(_row(i, s, "exact_match", float(abs(rng.normal(0.01, 0.005)))))
            rows.append(_row(i, s, "token_accuracy", 0.1 + 0.1 * i + rng.normal(0, 0.005)))
    out = analyze_results(pd.DataFrame(rows), FAST)
    assert _entry(out, "exact_match")["verdict"]["verdict"] == "absent"
    assert _entry(out, "token_accuracy")["verdict"]["verdict"] == "smooth"
    assert out["tasks"][0]["verdict"] == "smooth"
    assert out["mirage"][0]["outcome"] == "no_jump"


def _with_answer_prob(answer_len: int) -> pd.DataFrame:
    """The mirage family plus prob_correct = exp(answer log-prob) and per-length rows at `answer_len`."""
    df = mirage_family(answer_len=answer_len)
    lp = df[df["metric"] == "answer_logprob"].copy()
    prob = lp.assign(metric="prob_correct", value=np.exp(lp["value"]))
    per_len = df[df["metric"].isin(["token_accuracy", "exact_match"])].assign(answer_len=float(answer_len))
    return pd.concat([df, prob, per_len], ignore_index=True)


def test_answer_probability_of_long_answers_compounds_and_is_no_control() -> None:
    # exp(Σ log p) of a 10-token answer jumps with exact match; the check sets it aside, and the smooth
    # per-token metrics still make the task a mirage.
    result = analyze_results(_with_answer_prob(10), FAST)
    assert _entry(result, "prob_correct")["verdict"]["verdict"] == "emergent"
    (check,) = result["mirage"]
    by = {m["metric"]: m for m in check["metrics"]}
    assert by["prob_correct"]["compounds"] and not by["token_accuracy"]["compounds"]
    assert check["outcome"] == "mirage" and "prob_correct (emergent) compounds" in check["reason"]
    assert result["tasks"][0]["verdict"] == "mirage"


def test_answer_probability_of_single_token_answers_is_an_ordinary_control() -> None:
    # One token: the answer's probability is the per-token probability, and a jump in it is a real jump.
    df = _with_answer_prob(10)
    df.loc[df["answer_len"].notna(), "answer_len"] = 1.0
    result = analyze_results(df, FAST)
    (check,) = result["mirage"]
    assert not any(m["compounds"] for m in check["metrics"])
    assert check["outcome"] == "robust" and result["tasks"][0]["verdict"] == "emergent"


def test_json_has_no_nan_even_with_nan_rows(mirage: dict[str, Any]) -> None:
    json.dumps(mirage, allow_nan=False)
    df = mirage_family(seeds=2)
    df.loc[df.index[::7], "value"] = np.nan
    out = analyze_results(df, FAST)
    text = json.dumps(out, allow_nan=False)
    assert "NaN" not in text
    assert out["schema_version"] == 1 and out["study"] == "synthetic"


def test_curves_scale_and_training_time() -> None:
    rows = []
    for i in range(4):
        for s in range(2):
            for step in (10, 100, 1000):
                rows.append(_row(i, s, "exact_match", 0.1 * i + 0.0001 * step + 0.01 * s, step=step))
    out = analyze_results(pd.DataFrame(rows), AnalysisConfig(n_boot=20))
    e = out["entries"][0]
    c = e["curves"]["n_params"]
    assert c["x"] == sorted(c["x"]) and c["members"] == ["m0", "m1", "m2", "m3"]
    # The scale axis uses each run's final step only.
    assert c["mean"][1] == pytest.approx(0.1 + 0.1 + 0.005)
    assert c["n_seeds"] == [2, 2, 2, 2]
    assert len(c["points"]["y"]) == 8 and set(c["points"]["seed"]) == {0, 1}
    assert c["ci_low"][0] <= c["mean"][0] <= c["ci_high"][0]
    steps = e["curves"]["step"]
    assert [s["label"] for s in steps] == ["m0", "m1", "m2", "m3"]
    assert steps[0]["x"] == [10.0, 100.0, 1000.0]
    assert set(e["fits_step"]) == {"m0", "m1", "m2", "m3"}
    assert e["curves"]["flops"]["x"][0] == pytest.approx(6 * N[0] * 1000 * 512)
    assert e["prediction"]["n_params"]["status"] == "ok" and e["prediction"]["n_params"]["members"] == ["m3"]


def test_prediction_of_the_largest_model() -> None:
    rng = np.random.default_rng(3)
    u = np.repeat(np.log10(N), 3)
    y = 0.1 * u - 0.2 + rng.normal(0, 0.01, u.size)
    pred = predict_holdout(10**u, y, n_boot=100)
    assert pred["status"] == "ok" and pred["model"] == "line" and pred["n_fit"] == 8
    assert pred["x"] == [pytest.approx(1e8)] and pred["members"] == [""]
    assert pred["predicted"][0] == pytest.approx(0.6, abs=0.03)
    assert pred["abs_error"][0] == pytest.approx(abs(pred["predicted"][0] - pred["measured"][0]))
    assert pred["abs_error"][0] < 0.03 and pred["in_interval"] == [True]
    # A jump at the largest model is not predictable from the smaller ones: large error, outside the interval.
    y2 = np.where(u > 7.9, 0.95, 0.02 + rng.normal(0, 0.005, u.size))
    pred2 = predict_holdout(10**u, y2, n_boot=100)
    assert pred2["abs_error"][0] > 0.5 and pred2["in_interval"] == [False]
    short = predict_holdout(10 ** u[:9], y[:9], n_boot=10)
    assert short["status"] == "not_enough_data"


def test_passuntil_linear_for_a_scaling_law() -> None:
    c, alpha = 50.0, 0.3
    pu = np.exp(-c * N**-alpha)
    out = passuntil_fit(list(N), list(pu))
    assert out["status"] == "ok"
    assert out["alpha"] == pytest.approx(alpha, abs=1e-6)
    assert out["log_c"] == pytest.approx(math.log(c), abs=1e-6)
    assert out["r2"] == pytest.approx(1.0) and out["accelerated"] is False
    # Faster than the law at the top (concave in log N): accelerated emergence.
    z = math.log(c) - alpha * np.log(N) - 0.05 * (np.log(N) - np.log(N[0])) ** 2
    acc = passuntil_fit(list(N), list(np.exp(-np.exp(z))))
    assert acc["curvature"] < 0 and acc["accelerated"] is True
    undefined = passuntil_fit([1e4, 1e5, 1e6], [0.0, 0.5, 1.0])
    assert undefined["status"] == "undefined"


def test_answer_length_prediction() -> None:
    assert predict_exact_match(0.9, 3) == pytest.approx(0.729)
    rows = []
    for i in range(N.size):
        p = 0.5 + 0.05 * i
        rows.append(_row(i, 0, "token_accuracy", p))
        rows.append(_row(i, 0, "exact_match", p**4))
        for length in (1, 2, 4, 8):
            rows.append(_row(i, 0, "token_accuracy", p, answer_len=length))
            rows.append(_row(i, 0, "exact_match", p**length, answer_len=length))
    out = analyze_results(pd.DataFrame(rows), FAST)
    (lp,) = out["length_prediction"]
    assert len(lp["rows"]) == N.size * 4
    assert lp["mae"] == pytest.approx(0.0, abs=1e-12)
    # Per-length rows do not leak into the whole-test-set curves.
    assert _entry(out, "exact_match")["curves"]["n_params"]["n_seeds"] == [1] * N.size


def test_chance_column_and_lower_is_better() -> None:
    rows = []
    for i in range(5):
        rows.append(_row(i, 0, "accuracy", 0.25 + 0.15 * i, chance=0.25))
        rows.append(_row(i, 0, "brier", 0.75 - 0.15 * i, chance=0.25))
    out = analyze_results(pd.DataFrame(rows), FAST)
    acc, brier = _entry(out, "accuracy"), _entry(out, "brier")
    assert acc["chance"] == pytest.approx(0.25) and acc["best"] == 1.0
    assert acc["bigbench"]["n_params"]["scores"][0] == pytest.approx(0.0)
    assert acc["bigbench"]["n_params"]["scores"][-1] == pytest.approx(80.0)
    assert brier["higher_is_better"] is False and brier["bigbench"]["n_params"]["flipped"] is True
    # Brier's chance rule is "observed": low = the worst mean (0.75), high = the best value (0).
    scores = brier["bigbench"]["n_params"]["scores"]
    assert scores == sorted(scores) and scores[0] == pytest.approx(0.0) and scores[-1] == pytest.approx(80.0)


def test_degenerate_inputs_do_not_crash() -> None:
    two = pd.DataFrame([_row(i, 0, "exact_match", 0.1 * i) for i in range(2)])
    out = analyze_results(two, FAST)
    e = out["entries"][0]
    assert e["fits"]["n_params"]["status"] == "not_enough_data"
    assert (
        e["verdict"]["verdict"] == "inconclusive"
        and e["prediction"]["n_params"]["status"] == "not_enough_data"
    )
    const = pd.DataFrame([_row(i, s, "answer_logprob", -3.0) for i in range(5) for s in range(2)])
    out = analyze_results(const, FAST)
    e = out["entries"][0]
    assert e["fits"]["n_params"]["status"] == "constant"
    assert e["bigbench"]["n_params"]["improvement"] == 0.0 and e["verdict"]["verdict"] == "absent"
    # A constant curve of a metric with observed bounds has no normalised score at all.
    flat = pd.DataFrame([_row(i, s, "my_metric", 2.0) for i in range(5) for s in range(2)])
    e = analyze_results(flat, FAST)["entries"][0]
    assert e["bigbench"]["n_params"]["status"] == "degenerate" and e["verdict"]["verdict"] == "inconclusive"
    json.dumps(out, allow_nan=False)
    unknown = pd.DataFrame([_row(i, 0, "my_metric", float(i)) for i in range(4)])
    assert any("my_metric" in w for w in analyze_results(unknown, FAST)["warnings"])
    with pytest.raises(UserError, match="missing column"):
        analyze_results(two.drop(columns=["value"]), FAST)


def test_split_by_family() -> None:
    rows = [dict(_row(i, 0, "exact_match", 0.1 * i), family=f) for i in range(4) for f in ("gpt", "lstm")]
    out = analyze_results(pd.DataFrame(rows), FAST)
    assert sorted(e["group"]["family"] for e in out["entries"]) == ["gpt", "lstm"]
    assert len(out["tasks"]) == 2


def test_config_from_dict_validates() -> None:
    cfg = load_config({"n_boot": 10, "metrics": {"pass_at_1": {"kind": "discontinuous", "chance": 0.0}}})
    assert cfg.metrics["pass_at_1"].kind == "discontinuous"
    with pytest.raises(UserError, match="primary_axis"):
        load_config({"primary_axis": "flops", "scale_axes": ["n_params"]})
    with pytest.raises(UserError, match="kind"):
        load_config({"metrics": {"x": {"kind": "jumpy"}}})


def test_analyze_study_writes_json_and_keeps_other_keys(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"results\.parquet"):
        analyze_study(tmp_path)
    mirage_family(seeds=1).to_parquet(tmp_path / "results.parquet")
    (tmp_path / "analysis.json").write_text(json.dumps({"mechanisms": {"x": 1}, "tasks": "stale"}))
    out = analyze_study(tmp_path, FAST)
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["mechanisms"] == {"x": 1}
    assert saved["tasks"] == out["tasks"] and saved["tasks"][0]["task"] == "addition"


def test_cli_analyze(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emergence.cli import main

    assert main(["analyze", str(tmp_path)]) == 2
    assert "results.parquet" in capsys.readouterr().err
    mirage_family(seeds=1).to_parquet(tmp_path / "results.parquet")
    assert main(["analyze", str(tmp_path), "n_boot=10", "analysis.fit_time_axis=false"]) == 0
    printed = capsys.readouterr().out
    assert "addition" in printed and "mirage" in printed
    assert (tmp_path / "analysis.json").is_file()
    assert main(["analyze", str(tmp_path), "no_such_option=1"]) == 2


def test_trial_rows_are_not_double_counted() -> None:
    rows = []
    for i in range(4):
        rows.append(_row(i, 0, "exact_match", 0.2 * i, trial=-1))
        rows.append(_row(i, 0, "exact_match", 0.2 * i + 0.1, trial=0))
        rows.append(_row(i, 0, "exact_match", 0.2 * i - 0.1, trial=1))
        rows.append(_row(i, 0, "exact_match", 0.9, trial=2))
    out = analyze_results(pd.DataFrame(rows), FAST)
    assert out["entries"][0]["curves"]["n_params"]["mean"] == pytest.approx([0.0, 0.2, 0.4, 0.6])


@settings(max_examples=10, deadline=None)
@given(
    n_members=st.integers(1, 5),
    n_seeds=st.integers(1, 3),
    steps=st.lists(st.sampled_from([0, 10, 100, 1000]), min_size=1, max_size=3, unique=True),
    metric=st.sampled_from(["exact_match", "brier", "answer_logprob", "something_new"]),
    values=st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan"))), min_size=1, max_size=8),
    nan_scale=st.booleans(),
)
def test_any_small_input_gives_plain_json(
    n_members: int, n_seeds: int, steps: list[int], metric: str, values: list[float], nan_scale: bool
) -> None:
    rows, k = [], 0
    for i in range(n_members):
        for s in range(n_seeds):
            for step in steps:
                rows.append(_row(i, s, metric, values[k % len(values)], step=step))
                k += 1
    df = pd.DataFrame(rows)
    if nan_scale:
        df.loc[df.index[::2], "n_params"] = np.nan
    out = analyze_results(df, AnalysisConfig(n_boot=5))
    json.dumps(out, allow_nan=False)
    assert {t["verdict"] for t in out["tasks"]} <= {"emergent", "mirage", "smooth", "absent", "inconclusive"}


def test_sharp_rise_from_above_chance_and_falling_curves_are_inconclusive() -> None:
    rng = np.random.default_rng(4)
    u = np.log10(N)
    rows = []
    for i in range(N.size):
        for s in range(3):
            jump = 0.45 + 0.5 / (1 + math.exp(-8 * (u[i] - 6.5)))  # 45 % → 95 %: sharp, but not from chance
            rows.append(_row(i, s, "exact_match", float(jump + rng.normal(0, 0.005))))
            rows.append(_row(i, s, "token_accuracy", float(0.95 - 0.05 * i + rng.normal(0, 0.005))))
    out = analyze_results(pd.DataFrame(rows), FAST)
    em = _entry(out, "exact_match")["verdict"]
    assert em["criteria"]["nonlinear_fit"] and em["criteria"]["breakthrough"]
    assert not em["criteria"]["near_chance_small"] and em["verdict"] == "inconclusive"
    assert _entry(out, "token_accuracy")["verdict"]["verdict"] == "inconclusive"
