"""`emergence tasks list/show` through the real entry point: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergence.cli import main
from emergence.tasks import TASKS
from emergence.tasks.catalog import parse_option_args, task_catalog


def test_list_shows_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    for name in TASKS.names():
        assert name in out
    assert "reverse_answer" in out and "generate" in out and "choice" in out


def test_show_prints_doc_options_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["tasks", "show", "addition", "--option", "digits=2", "-o", "reverse_answer=true", "-n", "3"])
        == 0
    )
    out = capsys.readouterr().out
    assert "least-significant digit first" in out  # the docstring
    assert "3 test examples" in out
    assert out.count("+") >= 3 and "reverse_answer" in out


def test_show_choice_task_lists_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "show", "parity", "--split", "train", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "0 | 1" in out and "2 train examples" in out


def test_show_jsonl_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"input": f"q{i}=", "target": f"a{i}"}) for i in range(4)))
    # n larger than the split: the preview shows the whole split
    assert main(["tasks", "show", "jsonl", "-o", f"path={path}", "-o", "test_fraction=0.5", "-n", "50"]) == 0
    assert "test examples" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tasks", "show", "additon"], "unknown task 'additon' (did you mean 'addition'"),
        (["tasks", "show", "addition", "-o", "digts=3"], "did you mean 'digits'"),
        (["tasks", "show", "addition", "-o", "digits"], "must look like key=value"),
        (["tasks", "show", "addition", "--split", "dev"], "unknown split 'dev'"),
        (["tasks", "show", "addition", "-o", "digits=0"], "digits"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_catalog_and_option_parsing() -> None:
    names = [info.name for info in task_catalog()]
    assert names == sorted(names) == TASKS.names()
    addition = next(i for i in task_catalog() if i.name == "addition")
    assert ("digits", 3) in [(k, d) for k, d, _ in addition.options]
    assert parse_option_args(["digits=3", "pad=true", "path=a.jsonl", "alphabet=abc"]) == {
        "digits": 3,
        "pad": True,
        "path": "a.jsonl",
        "alphabet": "abc",
    }
