"""lm-evaluation-harness on an exported model and an exported task agrees with our evaluator."""

from __future__ import annotations

import json

import pytest
import torch

from emergence.cli import main
from emergence.evaluate.evaluator import EvalConfig, evaluate_model
from emergence.evaluate.lm import GPTLanguageModel
from emergence.models.gpt import GPT, GPTConfig
from emergence.models.hf import export_gpt2
from emergence.tasks import make_task
from emergence.tasks.lmeval import export_lm_eval_task
from emergence.tokenizers import CharTokenizer

lm_eval = pytest.importorskip("lm_eval")
N = 24


def _model(task) -> tuple[GPT, CharTokenizer]:
    tok = CharTokenizer.for_tasks([task])
    torch.manual_seed(5)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_head=2, d_model=16, n_ctx=32)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # an opinionated random model: accuracies away from 0 and 1
    return model, tok


def _lm_eval_samples(model_dir, task_dir, task_name) -> tuple[dict, list[dict]]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},add_bos_token=True,dtype=float32",
        tasks=[task_name],
        task_manager=TaskManager(include_path=str(task_dir)),
        num_fewshot=0,
        batch_size=8,
        device="cpu",
        log_samples=True,
    )
    return out["results"][task_name], sorted(out["samples"][task_name], key=lambda s: s["doc_id"])


@pytest.mark.parametrize(("name", "options"), [("parity", {"length": 4}), ("addition", {"digits": 1})])
def test_lm_eval_matches_our_evaluator(tmp_path, monkeypatch, name, options) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = make_task(name, **options)
    model, tok = _model(task)
    model_dir = export_gpt2(model, tok, tmp_path / "model")
    yaml_path = export_lm_eval_task(task, tmp_path / "tasks", n_test=N)[0]
    results, samples = _lm_eval_samples(model_dir, tmp_path / "tasks", yaml_path.stem)

    docs = [json.loads(line) for line in (yaml_path.parent / "test.jsonl").read_text().splitlines()]
    lm = GPTLanguageModel(model, tok)
    ours = evaluate_model(lm, [task], EvalConfig(shots=(0,), n_examples=N, bootstrap=0, length_rows=False))
    metric = "accuracy" if task.kind == "choice" else "exact_match"
    our_value = next(r["value"] for r in ours if r["metric"] == metric and r["shots"] == 0)

    if task.kind == "choice":
        requests = [(d["input"], c) for d in docs for c in d["choices"]]
        theirs = [float(r[0]) for s in samples for r in s["filtered_resps"]]
    else:
        requests = [(d["input"], d["target"]) for d in docs]
        theirs = [float(s["filtered_resps"][0][0]) for s in samples]
    scored = lm.loglikelihood(requests)
    mine = [r.logprob for r in scored]
    assert len(mine) == len(theirs) == len(requests)
    assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) <= 1e-4
    if task.kind == "choice":
        assert results["acc,none"] == pytest.approx(our_value, abs=1e-9)
    else:
        # lm-eval's loglikelihood `acc` is "every answer token is the argmax" (our is_greedy); exact match
        # also needs the generation to stop there, which the generate_until variant checks.
        assert results["acc,none"] == pytest.approx(sum(r.is_greedy for r in scored) / len(scored), abs=1e-9)
        gen_results, _ = _lm_eval_samples(model_dir, tmp_path / "tasks", f"{yaml_path.stem}_gen")
        assert gen_results["exact_match,none"] == pytest.approx(our_value, abs=1e-9)


def test_cli_export(tmp_path, capsys) -> None:
    assert main(["tasks", "export", "parity", "--lm-eval", str(tmp_path), "-n", "5"]) == 0
    written = sorted(p.name for p in (tmp_path / "emergence_parity").iterdir())
    assert written == ["emergence_parity.yaml", "test.jsonl", "train.jsonl"]
    assert main(["tasks", "export", "parityy", "--lm-eval", str(tmp_path)]) == 2
    assert "did you mean 'parity'" in capsys.readouterr().err
