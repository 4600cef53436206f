"""Reference study `induction-heads` (issue #7), quick variant: induction heads form in a phase change in
attention-only models with ≥ 2 layers and never in a 1-layer model (Olsson et al. 2022, REFERENCES §7).

Runs `src/emergence/studies/induction-heads-quick.yaml` through the public API (`load_study` → `run_study`)
into a temporary directory and asserts the issue's criteria on analysis.json
(`mechanisms.training_phases`, one entry per run):

- 1 layer: no head reaches an induction score of 0.3 at any checkpoint; ICL score near 0 (|ICL| < 0.1 nats).
  The last does not hold on this data (an expected failure, below): a 1-layer model lowers the loss of later
  tokens by favouring tokens seen earlier in the context, worth ~0.5 nats on these spans. What holds, and is
  asserted instead, is that its ICL score is well short of that of models with an induction head.
- ≥ 2 layers: a head with induction score ≥ 0.5 at the end, and the main change points of the training loss
  and of the ICL score within `TOLERANCE` steps of the induction score's rise.
"""

from __future__ import annotations

import pytest

from emergence.io import read_json
from emergence.studies import resolve_study
from emergence.sweep.config import load_study
from emergence.sweep.runner import run_study

pytestmark = pytest.mark.slow

# Checkpoints every 50 steps place a change point to ±50 steps; the loss, ICL and induction curves each
# change over ~100-300 steps, whose steepest point each detector picks. Olsson et al. see the three together.
TOLERANCE = 200
NEAR_ZERO_ICL = 0.1  # nats; the ICL score of an untrained model over 64 examples moves by ~0.05


@pytest.fixture(scope="module")
def entries(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("induction-heads-quick")
    outcome = run_study(load_study(resolve_study("induction-heads-quick")), out, progress=False)
    assert outcome.failed == 0 and outcome.done == outcome.total
    found = read_json(out / "analysis.json")["mechanisms"]["training_phases"]
    assert len(found) == outcome.total, "every run is measured at every checkpoint"
    assert {e["n_layer"] for e in found} >= {1, 2}
    return found


def test_one_layer_model_has_no_induction_head(entries: list[dict]) -> None:
    for e in (e for e in entries if e["n_layer"] == 1):
        scores = [v for v in e["curves"]["max_induction"] if v is not None]
        assert max(scores) < 0.3, f"{e['member']} seed {e['seed']}: induction score {max(scores):.2f}"


@pytest.mark.xfail(
    strict=True,
    reason="measured ICL score of the 1-layer model: -0.49 nats (copying tokens seen in the context; "
    "docs/studies/induction-heads.md), not near 0",
)
def test_one_layer_icl_score_near_zero(entries: list[dict]) -> None:
    for e in (e for e in entries if e["n_layer"] == 1):
        assert abs(e["final"]["icl_score"]) < NEAR_ZERO_ICL, f"{e['member']}: ICL {e['final']['icl_score']}"


def test_one_layer_icl_score_is_well_short_of_induction_models(entries: list[dict]) -> None:
    one = [e["final"]["icl_score"] for e in entries if e["n_layer"] == 1]
    induction = [e["final"]["icl_score"] for e in entries if e["final"]["max_induction"] >= 0.5]
    assert one and induction, "need a 1-layer model and a model with an induction head"
    # Scores are negative: the induction models' context gain is at least 1.5 times the 1-layer model's.
    assert max(induction) < 1.5 * min(one), f"1 layer {one}, with induction heads {induction}"


def test_deeper_models_form_an_induction_head(entries: list[dict]) -> None:
    for e in (e for e in entries if e["n_layer"] >= 2):
        assert e["final"]["max_induction"] >= 0.5, f"{e['member']} seed {e['seed']}: {e['final']}"
        assert e["main"]["max_induction"] is not None, "the induction score must rise at a change point"


def test_loss_and_icl_change_with_the_induction_score(entries: list[dict]) -> None:
    for e in (e for e in entries if e["n_layer"] >= 2):
        for curve in ("loss", "icl_score"):
            lag = e["lags"][curve]
            assert lag is not None, f"{e['member']} seed {e['seed']}: no {curve} change point"
            assert abs(lag) <= TOLERANCE, f"{e['member']} seed {e['seed']}: {curve} lag {lag} steps"
