"""Atomic writes leave the old file intact on failure; JSON is browser-safe; torn JSONL lines are skipped."""

from __future__ import annotations

import json

import pytest

from emergence import io
from emergence.errors import UserError


def test_atomic_write_keeps_old_file_on_error(tmp_path) -> None:
    p = tmp_path / "a.txt"
    io.write_text(p, "old")
    with pytest.raises(RuntimeError), io.atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind


def test_json_nan_becomes_null(tmp_path) -> None:
    p = tmp_path / "x.json"
    io.write_json(p, {"a": float("nan"), "b": [1.0, float("inf")], "c": (1, 2)})
    assert json.loads(p.read_text()) == {"a": None, "b": [1.0, None], "c": [1, 2]}


def test_jsonl_skips_torn_last_line(tmp_path) -> None:
    p = tmp_path / "m.jsonl"
    io.append_jsonl(p, {"step": 1})
    io.append_jsonl(p, {"step": 2})
    with open(p, "a") as f:
        f.write('{"step": 3, "lo')
    assert [r["step"] for r in io.read_jsonl(p)] == [1, 2]


def test_read_json_errors(tmp_path) -> None:
    (tmp_path / "b.json").write_text("{oops")
    with pytest.raises(UserError, match=r"b\.json: malformed JSON"):
        io.read_json(tmp_path / "b.json")
    with pytest.raises(UserError, match="file not found"):
        io.read_json(tmp_path / "nope.json")


def test_sha256(tmp_path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert io.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
