"""A study whose family is local Hugging Face models: evaluation-only runs, scale and training-time axes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest
import yaml

transformers = pytest.importorskip("transformers")

from emergence.cli import main  # noqa: E402
from emergence.io import read_json, sha256_file  # noqa: E402
from emergence.models.hf import hf_fast_tokenizer  # noqa: E402
from emergence.tasks import make_task  # noqa: E402
from emergence.tokenizers import CharTokenizer  # noqa: E402

TASK = {"name": "addition", "options": {"digits": 1}}


def _save_gpt2(out: Path, width: int, seed: int, tokenizer: bool = True) -> int:
    """A random GPT-2 of the given width saved as a model directory; returns its parameter count."""
    import torch

    tok = CharTokenizer.for_tasks([make_task(TASK["name"], **TASK["options"])])
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        n_embd=width,
        n_layer=1,
        n_head=2,
        n_positions=32,
        vocab_size=tok.vocab_size,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
    )
    model = transformers.GPT2LMHeadModel(cfg)
    model.save_pretrained(out)
    if tokenizer:
        hf_fast_tokenizer(tok).save_pretrained(out)
    return int(model.num_parameters())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Three widths as plain directories, and a 'suite' with checkpoints in step subfolders."""
    root = tmp_path_factory.mktemp("hf")
    counts = {f"w{w}": _save_gpt2(root / f"w{w}", w, seed=w) for w in (8, 16, 32)}
    # Like a downloaded suite: one tokenizer at the top, one subfolder per training checkpoint.
    suite = root / "suite"
    for step in (1, 2):
        counts[f"suite/step{step}"] = _save_gpt2(suite / f"step{step}", 24, seed=step, tokenizer=False)
    tok = CharTokenizer.for_tasks([make_task(TASK["name"], **TASK["options"])])
    hf_fast_tokenizer(tok).save_pretrained(suite)
    return root, counts


def _study(root: Path, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "hf",
        "family": {
            "hf": [
                {"name": "w8", "path": str(root / "w8")},
                {"name": "w16", "path": str(root / "w16")},
                {"name": "w32", "path": str(root / "w32"), "tokens_seen": 1000},
                {"name": "suite", "path": str(root / "suite"), "subfolder": "step1"},
                {"name": "suite", "path": str(root / "suite"), "subfolder": "step2", "tokens_seen": 64},
            ]
        },
        "seeds": [0, 1],  # nothing is trained: one run per entry all the same
        "tasks": [TASK],
        "eval": {"n_examples": 8, "bootstrap": 0},
    }
    data.update(changes)
    return data


def _run(path: Path, out: Path, *extra: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["run", str(path), "--out", str(out), "-q", *extra])
    return code, buf.getvalue()


def test_hf_family_study(models: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    root, counts = models
    path = tmp_path / "hf.yaml"
    path.write_text(yaml.safe_dump(_study(root)))
    out = tmp_path / "out"
    code, stdout = _run(path, out)
    assert code == 0 and "report:" in stdout
    for name in ("results.parquet", "analysis.json", "report.html", "plan.json", "environment.json"):
        assert (out / name).is_file(), name
    assert read_json(out / "status.json")["counts"] == {"done": 5}
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["member"]) == {"w8", "w16", "w32", "suite"}
    n_params = df.groupby("member")["n_params"].max().to_dict()
    assert n_params == {
        "w8": counts["w8"],
        "w16": counts["w16"],
        "w32": counts["w32"],
        "suite": counts["suite/step1"],
    }
    # Non-embedding: less the (V, D) input embedding.
    w32 = df[df["member"] == "w32"]
    vocab = CharTokenizer.for_tasks([make_task(TASK["name"], **TASK["options"])]).vocab_size
    assert (w32["n_params_non_embedding"] == counts["w32"] - vocab * 32).all()
    assert (w32["flops"] == 6 * (counts["w32"] - vocab * 32) * 1000).all()
    assert (
        df[df["member"] == "w8"]["flops"].isna().all()
        and df[df["member"] == "w8"]["tokens_seen"].isna().all()
    )
    # The suite's checkpoints are one member's curve over training: steps from subfolder names, one run_id.
    suite = df[df["member"] == "suite"]
    assert set(suite["step"]) == {1, 2} and suite["run_id"].nunique() == 1
    assert set(df[df["member"] != "suite"]["step"]) == {0}
    assert set(df["seed"]) == {0}
    assert {"exact_match", "token_accuracy"} <= set(df["metric"])
    assert df["value"].notna().any()
    analysis = read_json(out / "analysis.json")
    assert analysis["entries"]
    # Evaluation-only runs are done once: a second invocation evaluates nothing and rewrites the same results.
    first = sha256_file(out / "results.parquet")
    assert _run(path, out)[0] == 0
    assert sha256_file(out / "results.parquet") == first
    # `emergence eval` re-evaluates them with other settings (the resolved study.yaml reads back).
    assert main(["eval", str(out), "eval.n_examples=4", "-q"]) == 0
    again = pd.read_parquet(out / "results.parquet")
    whole = again[again["answer_len"].isna()] if "answer_len" in again else again
    assert set(whole["n"]) == {4} and set(again["member"]) == {"w8", "w16", "w32", "suite"}


def test_hf_entry_errors_name_the_field(
    models: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = models
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(_study(root, family={"hf": [{"name": "a", "path": str(root / "w8")}, {"name": "b"}]}))
    )
    assert _run(path, tmp_path / "x")[0] == 2
    assert "family.hf[1].path" in capsys.readouterr().err
    path.write_text(
        yaml.safe_dump(_study(root, family={"hf": [{"name": "a", "path": str(root / "nowhere")}]}))
    )
    assert _run(path, tmp_path / "x")[0] == 2
    assert "family.hf[0].path: no such directory" in capsys.readouterr().err
    # Two checkpoints of one member at the same step would fold into one point of its curve.
    twice = [{"name": "a", "path": str(root / "w8")}, {"name": "a", "path": str(root / "w16")}]
    path.write_text(yaml.safe_dump(_study(root, family={"hf": twice})))
    assert _run(path, tmp_path / "x")[0] == 2
    assert "family.hf[1].step" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_family_mixes_trained_members_and_hf_models(
    models: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    from .test_run_cli import TINY_STUDY

    root, counts = models
    family = {**TINY_STUDY["family"], "hf": [{"name": "w32", "path": str(root / "w32")}]}  # type: ignore[dict-item]
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "family": family, "tasks": [TASK]}))
    out = tmp_path / "out"
    assert _run(path, out)[0] == 0
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["member"]) == {"s", "l", "w32"}
    assert df[df["member"] == "w32"]["n_params"].eq(counts["w32"]).all()
    assert df[df["member"] != "w32"]["tokens_seen"].notna().all()  # trained runs keep their counts
    assert [e["member"] for e in read_json(out / "plan.json")] == ["s", "l", "w32"]
    assert (out / "report.html").is_file()
