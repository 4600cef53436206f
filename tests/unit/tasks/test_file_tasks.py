"""JSONL and BIG-bench JSON user tasks: validation with file:line, splits, layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emergence.errors import UserError
from emergence.tasks import example_hash, fewshot_prompt, load_jsonl_task, make_task


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def _gen_records(n: int) -> list[dict[str, Any]]:
    return [{"input": f"{i}+{i}=", "target": str(2 * i)} for i in range(n)]


def test_generation_records_and_hash_split(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "double.jsonl", _gen_records(200))
    task = load_jsonl_task(path, test_fraction=0.25)
    assert task.name == "double" and task.kind == "generate"
    train, test = task.examples("train"), task.examples("test")
    assert len(train) + len(test) == 200 and 30 < len(test) < 70
    assert {example_hash(e) for e in train}.isdisjoint(example_hash(e) for e in test)
    for ex in train + test:
        i = int(ex.prompt.split("+")[0])
        assert ex.target == str(2 * i) and ex.meta["source"].startswith(f"{path}:")
    assert task.examples("test", 10, seed=1) == task.examples("test", 10, seed=1)
    assert task.examples("test", 10, seed=1) != task.examples("test", 10, seed=2)
    # the split is a property of the input text: reordering the file or renaming the task does not move items
    shuffled = _write_jsonl(tmp_path / "other.jsonl", list(reversed(_gen_records(200))))
    other = make_task("jsonl", path=str(shuffled), test_fraction=0.25, name="renamed")
    assert other.name == "renamed"
    assert {e.prompt for e in other.examples("test")} == {e.prompt for e in test}
    with pytest.raises(UserError, match="holds only"):
        task.examples("test", len(test) + 1)


def test_choice_records(tmp_path: Path) -> None:
    recs = [
        {"input": f"Is {i} even? ", "target_scores": {"yes": int(i % 2 == 0), "no": int(i % 2)}}
        for i in range(40)
    ]
    task = load_jsonl_task(_write_jsonl(tmp_path / "even.jsonl", recs), test_fraction=0.5)
    assert task.kind == "choice"
    for ex in task.examples("train") + task.examples("test"):
        i = int(ex.prompt.split()[1])
        assert ex.choices == ("yes", "no") and ex.target == ("yes" if i % 2 == 0 else "no")
        assert ex.meta["target_scores"][ex.target] == 1.0
    assert task.max_answer_len == 3


def test_explicit_splits_and_target_lists(tmp_path: Path) -> None:
    recs = [
        {"input": "a", "target": ["x", "y"], "split": "train", "id": 7},
        {"input": "b", "target": "z", "split": "test"},
    ]
    task = load_jsonl_task(_write_jsonl(tmp_path / "t.jsonl", recs))
    (tr,) = task.examples("train")
    (te,) = task.examples("test")
    assert (tr.prompt, tr.target, tr.meta["targets"], tr.meta["id"]) == ("a", "x", ["x", "y"], 7)
    assert (te.prompt, te.target) == ("b", "z")
    assert set("abxyz") <= set(task.alphabet())


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"input": "a", "target": "b"}, "", {"input": "c"}], ':3: missing "target"$'),
        ([{"target": "b"}], ':1: missing "input"'),
        ([{"input": "a"}], ':1: missing "target" \\(or "target_scores"'),
        ([{"input": "a", "target": "b"}, "{oops"], ":2: malformed JSON"),
        ([{"input": "a", "target": ""}], ':1: "target" must be a non-empty string'),
        ([{"input": 3, "target": "b"}], ':1: "input" must be a string'),
        (["[1, 2]"], ":1: expected a JSON object"),
        (
            [{"input": "a", "target": "b"}, {"input": "c", "target_scores": {"x": 1, "y": 0}}],
            ":2: a choice record",
        ),
        ([{"input": "a", "target_scores": {"x": 1}}], ':1: "target_scores" must map at least two'),
        (
            [{"input": "a", "target_scores": {"x": 1, "y": "high"}}],
            ":1: score of choice 'y' must be a number",
        ),
        ([{"input": "a", "target_scores": {"x": 1, "y": 1}}], ':1: all "target_scores" are equal'),
        ([{"input": "a", "target": "b", "split": "dev"}], ':1: "split" must be "train" or "test"'),
        (
            [{"input": "a", "target": "b", "split": "train"}, {"input": "c", "target": "d"}],
            ':2: missing "split"',
        ),
        (
            [{"input": "a", "target": "b", "split": "train"}, {"input": "a", "target": "c", "split": "test"}],
            ":2: the same input is in the train split at .*:1",
        ),
        ([""], "no records"),
    ],
)
def test_jsonl_validation_names_file_and_line(tmp_path: Path, lines: list[Any], message: str) -> None:
    path = _write_jsonl(tmp_path / "tasks.jsonl", lines)
    with pytest.raises(UserError, match=message) as info:
        load_jsonl_task(path)
    assert str(info.value).startswith(str(path))


def test_jsonl_option_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="path: required"):
        make_task("jsonl")
    with pytest.raises(UserError, match="file not found"):
        make_task("jsonl", path=str(tmp_path / "missing.jsonl"))
    path = _write_jsonl(tmp_path / "t.jsonl", _gen_records(3))
    with pytest.raises(UserError, match="did you mean 'test_fraction'"):
        make_task("jsonl", path=str(path), test_fracton=0.5)


BB_GEN = {
    "name": "tiny_sums",
    "description": "sums",
    "keywords": ["arithmetic"],
    "task_prefix": "Add.\n",
    "examples": [{"input": f"{i} plus {i}", "target": [str(2 * i), f"two times {i}"]} for i in range(30)],
}


def test_bigbench_generation_layout(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    path.write_text(json.dumps(BB_GEN))
    task = make_task("bigbench", path=str(path), test_fraction=0.3)
    assert task.name == "tiny_sums" and task.kind == "generate"
    assert task.task_prefix == "Add.\n" and task.fewshot_separator == "\n"
    train, test = task.examples("train"), task.examples("test")
    assert len(train) + len(test) == 30
    assert {example_hash(e) for e in train}.isdisjoint(example_hash(e) for e in test)
    ex = train[0]
    i = int(ex.meta["input"].split()[0])
    assert ex.prompt == f"\nQ: {i} plus {i}\nA: " and ex.target == str(2 * i)
    assert ex.meta["targets"] == [str(2 * i), f"two times {i}"]
    text = fewshot_prompt(task, train[:2], test[0])
    assert text.startswith("Add.\n\nQ: ") and text.endswith(test[0].prompt)
    assert text.count("\nA: ") == 3
    assert set(text) <= set(task.alphabet())


def test_bigbench_choice_layout(tmp_path: Path) -> None:
    data = {
        "example_input_prefix": "Question: ",
        "example_output_prefix": "\nAnswer: ",
        "choice_prefix": "\n - ",
        "examples": [
            {"input": f"Capital {i}?", "target_scores": {f"right{i}": 1, f"wrong{i}": 0, f"other{i}": 0}}
            for i in range(40)
        ],
    }
    path = tmp_path / "mc.json"
    path.write_text(json.dumps(data))
    task = make_task("bigbench", path=str(path), test_fraction=0.5)
    assert task.name == "mc" and task.kind == "choice"
    exs = task.examples("train") + task.examples("test")
    first_positions = set()
    for ex in exs:
        i = ex.meta["input"].split()[1].rstrip("?")
        assert ex.target == f"right{i}" and set(ex.choices or ()) == {f"right{i}", f"wrong{i}", f"other{i}"}
        listed = "".join(f"\n - {c}" for c in ex.choices or ())
        assert ex.prompt == f"Question: Capital {i}?{listed}\nAnswer: "
        first_positions.add((ex.choices or ()).index(ex.target))
    assert len(first_positions) > 1  # listed choices are shuffled, the answer is not always first
    # the listing order is fixed by the input, not by the sampling seed
    assert task.examples("test", 5, seed=3)[0].choices == next(
        e.choices
        for e in task.examples("test", None, seed=0)
        if e.prompt == task.examples("test", 5, seed=3)[0].prompt
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object"),
        ({"subtasks": []}, 'missing "examples" \\(a task with subtasks'),
        ({"examples": []}, "non-empty list"),
        ({"examples": [{"input": "a"}]}, 'examples\\[0\\]: missing "target"'),
        (
            {"examples": [{"input": "a", "target": "b"}, {"input": "c", "target": 5}]},
            'examples\\[1\\]: "target"',
        ),
        ({"examples": [{"input": "a", "target": "b"}], "task_prefix": 3}, '"task_prefix" must be a str'),
        ({"examples": [{"input": "a", "target": "b"}], "append_choices_to_input": "yes"}, "must be a bool"),
    ],
)
def test_bigbench_validation(tmp_path: Path, data: Any, message: str) -> None:
    path = tmp_path / "task.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message) as info:
        make_task("bigbench", path=str(path))
    assert str(path) in str(info.value)


def test_bigbench_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    path.write_text('{"examples": [')
    with pytest.raises(UserError, match="malformed JSON"):
        make_task("bigbench", path=str(path))
