"""Integration fixtures: a real directory, a real file and the real watcher.

``settings`` runs each test that takes it twice: once with the msgspec `Settings` and once
with its pydantic twin, so both kinds of schema pass the very same integration tests.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec
import pydantic
import pytest


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A small schema for the integration tests."""

    model: str
    retries: int = 3


class PydanticSettings(pydantic.BaseModel):
    """`Settings` as a pydantic model: frozen, strict and closed, like the Struct."""

    model_config = pydantic.ConfigDict(frozen=True, strict=True, extra="forbid")

    model: str
    retries: int = 3


AnySettings: TypeAlias = Settings | PydanticSettings
SettingsSchema: TypeAlias = type[Settings] | type[PydanticSettings]


@pytest.fixture(params=[Settings, PydanticSettings], ids=["msgspec", "pydantic"])
def settings(request: pytest.FixtureRequest) -> SettingsSchema:
    """The schema class under test: build expected configs with ``settings(model=...)``."""
    schema: SettingsSchema = request.param
    return schema
