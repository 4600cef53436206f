"""One generic registry for tasks, metrics, model backends and executors.

Registration (a decorator at the definition) is the single source of truth; an unknown name gets a
"did you mean" error.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from emergence.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object map with decorator registration and helpful lookup errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@TASKS.register("addition")`."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register without a decorator."""
        self.register(name)(obj)

    def get(self, name: str) -> T:
        """Look up a name; unknown names raise a UserError with close matches."""
        try:
            return self._items[name]
        except KeyError:
            raise UserError(unknown_name_message(self.kind, name, self._items)) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def unknown_name_message(kind: str, name: str, known: object) -> str:
    """ "unknown task 'additon' (did you mean 'addition'?)" — shared by the registry and the config loader."""
    names = sorted(str(k) for k in known)  # type: ignore[attr-defined]
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    listing = "" if close or len(names) > 30 else f"; known: {', '.join(names)}"
    return f"unknown {kind} {name!r}{hint}{listing}"
