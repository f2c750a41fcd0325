"""Integration fixtures: a real directory, a real file and the real watcher."""

from __future__ import annotations

import msgspec


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A small schema for the integration tests."""

    model: str
    retries: int = 3
