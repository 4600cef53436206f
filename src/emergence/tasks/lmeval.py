"""Export any task of ours as an lm-evaluation-harness task: a YAML config plus local JSONL data.

    emergence tasks export addition -o digits=2 --lm-eval out/
    lm_eval --model hf --model_args pretrained=EXPORTED_MODEL,add_bos_token=True \
            --tasks emergence_addition --include_path out/

Layout written under DIR/<task name>/: `test.jsonl`, `train.jsonl` (the few-shot pool), `<name>.yaml`
(loglikelihood: `acc` is lm-eval's is-greedy, which equals our exact match under greedy decoding of the
answer's tokens; choice tasks: `multiple_choice` with `acc` and `acc_norm`), and for generate tasks a
second `<name>_gen.yaml` (`generate_until` with exact match). Records carry `input`, `target`, and for choice
tasks `choices` and `gold`. The YAML names the JSONL files by absolute path (lm-eval's `json` dataset
builder resolves `data_files` against the working directory), so re-export after moving the directory.
The target delimiter is empty because our prompts end with their own delimiter (`123+456=`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from emergence.errors import UserError
from emergence.io import write_text
from emergence.tasks.base import Example, Task


def lm_eval_task_name(task: Task) -> str:
    """`emergence_<name>` with characters lm-eval accepts in task names."""
    return "emergence_" + re.sub(r"[^A-Za-z0-9_]+", "_", task.name)


def _records(examples: list[Example]) -> str:
    lines = []
    for ex in examples:
        rec: dict[str, Any] = {"input": ex.prompt, "target": ex.target}
        if ex.choices is not None:
            rec["choices"] = list(ex.choices)
            rec["gold"] = ex.choices.index(ex.target)
        lines.append(json.dumps(rec, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _take(task: Task, split: str, n: int, seed: int) -> list[Example]:
    try:
        return task.examples(split, n, seed)  # type: ignore[arg-type]
    except UserError:
        return task.examples(split, None, seed)  # a small split: all of it


def export_lm_eval_task(
    task: Task, out_dir: str | Path, *, n_test: int = 200, n_train: int = 512, seed: int = 0
) -> list[Path]:
    """Write the lm-eval YAML(s) and JSONL data for `task`; returns the YAML paths."""
    name = lm_eval_task_name(task)
    root = Path(out_dir).resolve() / name
    test, train = _take(task, "test", n_test, seed), _take(task, "train", n_train, seed)
    write_text(root / "test.jsonl", _records(test))
    write_text(root / "train.jsonl", _records(train))
    base: dict[str, Any] = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {
            "data_files": {"test": str(root / "test.jsonl"), "train": str(root / "train.jsonl")}
        },
        "test_split": "test",
        "fewshot_split": "train",
        "doc_to_text": "{{input}}",
        "target_delimiter": "",
        "fewshot_delimiter": task.fewshot_separator,
        "metadata": {"version": 1.0, "source": "emergence-lab", "options": task.options},
    }
    if task.task_prefix:
        base["description"] = task.task_prefix
    paths = []
    if task.kind == "choice":
        cfg = {
            **base,
            "output_type": "multiple_choice",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{gold}}",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        }
        paths.append(root / f"{name}.yaml")
        write_text(paths[-1], yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    else:
        cfg = {
            **base,
            "output_type": "loglikelihood",
            "doc_to_target": "{{target}}",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
            ],
        }
        paths.append(root / f"{name}.yaml")
        write_text(paths[-1], yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        stop = task.fewshot_separator or "\n"
        gen = {
            **base,
            "task": f"{name}_gen",
            "output_type": "generate_until",
            "doc_to_target": "{{target}}",
            "generation_kwargs": {
                "until": [stop],
                "do_sample": False,
                "max_gen_toks": task.max_answer_len + 2,
            },
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        }
        paths.append(root / f"{name}_gen.yaml")
        write_text(paths[-1], yaml.safe_dump(gen, sort_keys=False, allow_unicode=True))
    return paths
