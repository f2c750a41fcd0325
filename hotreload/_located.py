"""A refusal that names where in the document it is: for schema adapters whose checks are not
one library's errors (the `hotreload.holmesgpt` presets' rules, holmesgpt's own loaders)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._schema import Problem
from ._unknown import UnknownKey

__all__ = ["LocatedRefusal", "problem_at", "with_typo"]

Loc = tuple[str | int, ...]


class LocatedRefusal(Exception):
    """``message``, at ``loc`` (keys and indexes from the document's root). ``at_key``: point
    at the key itself (an unknown one); ``missing``: the last step is a field that is absent."""

    def __init__(
        self, message: str, loc: Loc, *, at_key: bool = False, missing: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.at_key = at_key
        self.missing = missing


def problem_at(refusal: LocatedRefusal, data: Any) -> Problem:
    """The `Problem` of ``refusal``: its path walked through ``data`` as far as it exists
    (steps that are not in the document, a union member's name say, are skipped)."""
    located: list[str | int] = []
    node = data
    for step in refusal.loc:
        if _has(node, step):
            node = node[step]
            located.append(step)
    shown = list(located)
    if refusal.missing and refusal.loc and refusal.loc[-1] not in located:
        shown.append(refusal.loc[-1])
    return Problem(refusal.message, located, shown, at_key=refusal.at_key)


def _has(node: Any, step: str | int) -> bool:
    if isinstance(node, Mapping):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def with_typo(problem: Problem, unknown: Sequence[UnknownKey]) -> Problem:
    """A refusal of a record that has an unknown key close to a field it lacks (``comand:``
    in a tool without ``command``) points at that key and names the field it was meant to be.
    """
    for key in unknown:
        if key.suggestion is not None and list(key.path[:-1]) == problem.located:
            meant = key.suggestion.rsplit(".", 1)[-1]
            message = f"{problem.message} (`{key.path[-1]}`: did you mean `{meant}`?)"
            return Problem(message, list(key.path), list(key.path), at_key=True)
    return problem
