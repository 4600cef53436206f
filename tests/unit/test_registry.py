"""The generic registry: decorator registration and did-you-mean lookups."""

from __future__ import annotations

import pytest

from emergence.errors import UserError
from emergence.registry import Registry


def test_register_and_lookup() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("addition")
    def make() -> int:
        return 1

    assert reg.get("addition") is make
    assert "addition" in reg and reg.names() == ["addition"] and len(reg) == 1
    with pytest.raises(UserError, match=r"unknown widget 'additon' \(did you mean 'addition'\?\)"):
        reg.get("additon")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("addition", object())
