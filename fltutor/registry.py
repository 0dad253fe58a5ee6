"""A name -> entry table, one per kind of plug-in (datasets, partitions, aggregators, models, attacks).

Widgets take their choices from a registry, so adding a partition scheme or an aggregator is
writing one function and decorating it, and adding its name to ``fltutor.names``: the command
line lists that module's copy of the names, which needs no torch (a test compares the two).

>>> colours = Registry("colour")
>>> @colours.register("red")
... def red():
...     return "#f00"
>>> colours["red"]()
'#f00'
>>> colours["blue"]
Traceback (most recent call last):
...
ValueError: unknown colour 'blue'; known: red
"""

from __future__ import annotations

from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)


class Registry:
    """Maps names to entries (usually callables), refusing duplicates and explaining unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that files the decorated callable under ``name``.

        A decorated class with a ``name`` attribute (a spec of ``fltutor.parts``) learns its name,
        so the name is written once.
        """

        def decorate(function: F) -> F:
            self.add(name, function)
            if isinstance(function, type) and hasattr(function, "name"):
                function.name = name
            return function

        return decorate

    def add(self, name: str, entry) -> None:
        """File ``entry`` under ``name``; a name can be taken only once."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def check(self, name: str) -> str:
        """Return ``name`` if it is known, else raise a ValueError that lists the known names."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return name

    def __getitem__(self, name: str):
        return self._entries[self.check(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)
