"""Fixtures: etcd servers (see `servers`) started per module, per test, or as a cluster."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .servers import Admin, Member

if importlib.util.find_spec("httpx") is None:  # the 'etcd' extra is not installed
    if os.environ.get("CI"):
        raise ImportError("the etcd tests need the 'etcd' extra: pip install -e '.[dev]'")
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="package")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    """A single-member etcd shared by the etcd tests that never kill it (each has its own key)."""
    from .servers import Member

    member = Member("n1", tmp_path_factory.mktemp("etcd") / "data")
    member.spawn()
    try:
        member.wait_healthy()
        yield member
    finally:
        member.kill()


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[Member]:
    """A single-member etcd for one test, which may kill and restart it."""
    from .servers import Member

    member = Member("solo", tmp_path / "data")
    member.spawn()
    try:
        member.wait_healthy()
        yield member
    finally:
        member.kill()


@pytest.fixture(scope="package")
def whole_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Member]]:
    """Three etcd members on loopback forming one cluster, started once for the etcd tests."""
    from .servers import Member

    root = tmp_path_factory.mktemp("cluster")
    members = [Member(f"m{i}", root / f"m{i}") for i in range(3)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for member in members:
        member.cluster = initial
        member.spawn()
    try:
        for member in members:
            member.wait_healthy()
        yield members
    finally:
        for member in members:
            member.kill()


@pytest.fixture
def cluster(whole_cluster: list[Member]) -> Iterator[list[Member]]:
    """The three-member cluster, whole; members a test killed are restarted after it."""
    yield whole_cluster
    killed = [m for m in whole_cluster if m.proc is None]
    for member in killed:
        member.spawn()
    for member in whole_cluster:
        member.wait_healthy()


@pytest.fixture
def admin(etcd: Member) -> Admin:
    from .servers import Admin

    return Admin(etcd)
