"""`Rollout` checks its options where it is built, and needs probation beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, Probation, Rollout
from tests.integration.conftest import Settings


def test_the_defaults_and_the_endpoints_as_a_tuple() -> None:
    rollout = Rollout(["http://127.0.0.1:2379"])
    assert rollout == Rollout(("http://127.0.0.1:2379",), "/hotreload", "auto", 600.0, "keep")
    assert rollout.endpoints == ("http://127.0.0.1:2379",)
    with pytest.raises(AttributeError):
        rollout.role = "canary"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"endpoints": "http://e:2379"}, TypeError, "not one string"),
        ({"endpoints": []}, ValueError, "at least one etcd endpoint"),
        ({"prefix": "hotreload"}, ValueError, "prefix must be an etcd key path"),
        ({"role": "leader"}, ValueError, "role must be one of"),
        ({"hold_timeout": 0}, ValueError, "hold_timeout must be > 0"),
        ({"hold_timeout": float("nan")}, ValueError, "hold_timeout must be > 0"),
        ({"hold_timeout": True}, ValueError, "hold_timeout must be > 0"),
        ({"on_timeout": "drop"}, ValueError, "on_timeout must be one of"),
        ({"identity": ""}, ValueError, "identity must be a non-empty string"),
    ],
)
def test_bad_options_are_refused_with_their_name(
    options: dict[str, object], error: type[Exception], match: str
) -> None:
    kwargs: dict[str, object] = {"endpoints": ["http://127.0.0.1:2379"], **options}
    with pytest.raises(error, match=match):
        Rollout(**kwargs)  # type: ignore[arg-type]


def test_a_rollout_needs_probation(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rollout = Rollout(["http://127.0.0.1:2379"], role="follower")
    with pytest.raises(ValueError, match="rollout needs probation"):
        HotReloader(path, schema=Settings, registry=CollectorRegistry(), rollout=rollout)
    with pytest.raises(TypeError, match=r"must be a hotreload\.Rollout"):
        HotReloader(
            path,
            schema=Settings,
            registry=CollectorRegistry(),
            probation=Probation(),
            rollout="http://127.0.0.1:2379",  # type: ignore[arg-type]
        )
    reloader = HotReloader(
        path, schema=Settings, registry=CollectorRegistry(), probation=Probation(), rollout=rollout
    )
    assert reloader.rollout is rollout
    assert reloader.rollout_report() == {
        "role": "follower",
        "awaiting_verdict": None,
        "verdicts_seen": 0,
    }
    assert HotReloader(path, schema=Settings, registry=CollectorRegistry()).rollout_report() is None
