"""EtcdSource against real etcd servers: reads, the watch, recovery, compaction, a cluster."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from hotreload import ConfigReadError
from hotreload._etcd import EtcdSource
from hotreload._source import Revision, Source

from .servers import Admin, Gate, Member, free_port, make_tls

WAIT = 5.0


class Watching:
    """A running ``source.watch()``: its notifications in order and whether it is ready."""

    def __init__(self, source: EtcdSource) -> None:
        self.source = source
        self.kinds: asyncio.Queue[str] = asyncio.Queue()
        self.is_ready = asyncio.Event()
        self.ready_calls = 0
        self.task: asyncio.Task[None] | None = None

    def _ready(self) -> None:
        self.ready_calls += 1
        self.is_ready.set()

    async def ready(self) -> None:
        await asyncio.wait_for(self.is_ready.wait(), WAIT)

    async def next(self) -> str:
        """The next notification's kind."""
        return await asyncio.wait_for(self.kinds.get(), WAIT)

    async def until_read(self, expected: bytes) -> Revision:
        """Follow notifications, reading after each as the reloader would, until ``expected``."""
        while True:
            await self.next()
            try:
                revision = await self.source.read(1 << 20)
            except ConfigReadError:
                continue
            if revision.content == expected:
                return revision

    def pending(self) -> list[str]:
        kinds = []
        while not self.kinds.empty():
            kinds.append(self.kinds.get_nowait())
        return kinds


@asynccontextmanager
async def watching(source: EtcdSource) -> AsyncIterator[Watching]:
    w = Watching(source)
    w.task = asyncio.create_task(source.watch(w.kinds.put_nowait, w._ready))
    try:
        yield w
    finally:
        assert not w.task.done(), "watch() returned or raised on its own"
        w.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w.task
    assert w.ready_calls <= 1


def fast(key: str, *endpoints: str, **options: Any) -> EtcdSource:
    """A source that retries quickly, as a test wants."""
    return EtcdSource(key, endpoints=list(endpoints), max_backoff=0.2, **options)


# -- reading -----------------------------------------------------------------------------------


async def test_fulfils_the_source_protocol(etcd: Member) -> None:
    source = EtcdSource("/app/config.yaml", port=etcd.client_port)
    assert isinstance(source, Source)
    assert source.uri == f"etcd://127.0.0.1:{etcd.client_port}/app/config.yaml"
    assert source.format is None
    assert EtcdSource("/c", format="json").format == "json"


async def test_read_gives_the_value_and_its_mod_revision(etcd: Member, admin: Admin) -> None:
    await admin.put("/read/other", "x: 0\n")
    revision = await admin.put("/read/config.yaml", "model: a\n")
    await admin.put("/read/other", "x: 1\n")  # the store moves on; the key's revision does not

    got = await EtcdSource("/read/config.yaml", port=etcd.client_port).read(1024)

    assert got == Revision(b"model: a\n", str(revision))


async def test_missing_or_deleted_key_is_a_read_error(etcd: Member, admin: Admin) -> None:
    source = EtcdSource("/missing/config.yaml", port=etcd.client_port)
    with pytest.raises(ConfigReadError) as missing:
        await source.read(1024)
    assert missing.value.source == source.uri
    assert missing.value.reason == "missing"

    await admin.put("/missing/config.yaml", "model: a\n")
    assert (await source.read(1024)).content == b"model: a\n"
    await admin.delete("/missing/config.yaml")
    with pytest.raises(ConfigReadError, match="key not found"):
        await source.read(1024)


async def test_a_value_over_max_bytes_is_refused(etcd: Member, admin: Admin) -> None:
    await admin.put("/big/config.yaml", "a" * 2000)
    source = EtcdSource("/big/config.yaml", port=etcd.client_port)
    assert len((await source.read(2000)).content) == 2000
    with pytest.raises(ConfigReadError, match="1999-byte limit") as err:
        await source.read(1999)
    assert err.value.reason == "too_large"
    with pytest.raises(ConfigReadError) as err:
        await source.read(10)  # refused while the answer streams in, not after
    assert err.value.reason == "too_large"


async def test_unreachable_etcd_is_a_read_error_naming_the_uri() -> None:
    source = EtcdSource("/c.yaml", endpoints=[f"127.0.0.1:{free_port()}"], timeout=1)
    with pytest.raises(ConfigReadError, match="no etcd endpoint answered") as err:
        await source.read(1024)
    assert err.value.source == source.uri
    assert err.value.reason == "read"


# -- watching ----------------------------------------------------------------------------------


async def test_put_notifies_and_the_read_gives_the_new_bytes(etcd: Member, admin: Admin) -> None:
    await admin.put("/watch/config.yaml", "model: a\n")
    source = fast("/watch/config.yaml", etcd.endpoint)
    async with watching(source) as w:
        await w.ready()
        revision = await admin.put("/watch/config.yaml", "model: b\n")
        assert await w.next() == "put"
        assert await source.read(1024) == Revision(b"model: b\n", str(revision))

        await admin.delete("/watch/config.yaml")
        assert await w.next() == "delete"
        with pytest.raises(ConfigReadError):
            await source.read(1024)


async def test_a_write_between_the_read_and_the_watch_is_not_missed(
    etcd: Member, admin: Admin
) -> None:
    """The reloader reads first and watches after: the watch starts where the read ended."""
    await admin.put("/gap/config.yaml", "model: a\n")
    source = fast("/gap/config.yaml", etcd.endpoint)
    await source.read(1024)
    await admin.put("/gap/config.yaml", "model: b\n")
    async with watching(source) as w:
        assert (await w.until_read(b"model: b\n")).content == b"model: b\n"


async def test_compaction_falls_back_to_a_full_read(etcd: Member, admin: Admin) -> None:
    """Writes while the watcher is cut off, then compaction past its revision: etcd cannot
    replay them, so the source asks for a full read and watches on."""
    key = "/compact/config.yaml"
    await admin.put(key, "model: a\n")
    async with Gate(etcd.client_port) as gate:
        source = fast(key, gate.endpoint)
        async with watching(source) as w:
            await w.ready()
            gate.pause()
            gate.sever()
            for n in range(5):
                last = await admin.put(key, f"model: v{n}\n")
            await admin.compact(last)
            gate.resume()

            assert await w.next() == "compacted"
            assert await source.read(1024) == Revision(b"model: v4\n", str(last))
            after = await admin.put(key, "model: after\n")  # and it watches on
            assert (await w.until_read(b"model: after\n")).version == str(after)


async def test_a_member_that_never_confirms_the_watch_is_left(
    etcd: Member, admin: Admin, log_events: LogEvents
) -> None:
    """A connection that is accepted and then silent must not hold the watch forever."""
    key = "/silent/config.yaml"
    await admin.put(key, "model: a\n")
    async with Gate(etcd.client_port) as gate:
        gate.pause()  # accepts, forwards nothing
        source = EtcdSource(key, endpoints=[gate.endpoint], timeout=0.2, max_backoff=0.2)
        async with watching(source) as w:
            await log_events.wait("etcd_watch_lost")
            lost = [e for e in log_events.entries if e["event"] == "etcd_watch_lost"]
            assert "did not confirm the watch within 0.2 s" in lost[0]["error"]
            assert not w.is_ready.is_set()
            gate.resume()
            await w.ready()


# -- recovery ----------------------------------------------------------------------------------


async def test_sigkill_and_restart_mid_watch_recovers(own_etcd: Member) -> None:
    admin = Admin(own_etcd)
    key = "/restart/config.yaml"
    await admin.put(key, "model: a\n")
    source = fast(key, own_etcd.endpoint)
    async with watching(source) as w:
        await w.ready()
        own_etcd.kill()
        late = fast(key, own_etcd.endpoint)  # a watch that starts while etcd is down
        async with watching(late) as w_late:
            await own_etcd.restart()
            await w_late.ready()  # it keeps retrying and gets there
            revision = await admin.put(key, "model: b\n")
            assert (await w.until_read(b"model: b\n")).version == str(revision)
            assert (await w_late.until_read(b"model: b\n")).version == str(revision)


async def test_writes_the_watcher_never_saw_are_replayed(own_etcd: Member) -> None:
    """One write lands after the last event the watcher got and before etcd is SIGKILLed;
    one lands after the restart, before the watcher is back. It resumes after the last
    revision it saw, so etcd replays both: a plain "watch from now" would miss them."""
    admin = Admin(own_etcd)
    key = "/replay/config.yaml"
    await admin.put(key, "model: a\n")
    async with Gate(own_etcd.client_port) as gate:
        source = fast(key, gate.endpoint)
        async with watching(source) as w:
            await w.ready()
            seen = await admin.put(key, "model: seen\n")
            assert await w.next() == "put"
            gate.pause()  # the watcher hears nothing from here on
            await admin.put(key, "model: unseen\n")
            gate.sever()  # ... and what etcd sent it meanwhile is lost
            own_etcd.kill()
            await own_etcd.restart()
            last = await admin.put(key, "model: after-restart\n")
            assert w.pending() == []
            gate.resume()

            assert await w.next() == "put"  # a replayed event, not a "compacted" re-read
            got = await source.read(1024)
            assert got == Revision(b"model: after-restart\n", str(last))
            assert last == seen + 2


async def test_a_cluster_that_loses_its_leader_still_converges(
    cluster: list[Member], log_events: LogEvents
) -> None:
    admin = Admin(*cluster)
    key = "/cluster/config.yaml"
    await admin.put(key, "model: a\n")
    leader = await admin.leader()
    others = [m for m in cluster if m is not leader]
    # The leader first: the source talks to it, and has to move when it dies.
    source = fast(key, leader.endpoint, *(m.endpoint for m in others))
    async with watching(source) as w:
        await w.ready()
        await admin.put(key, "model: b\n")
        assert await w.next() == "put"

        leader.kill()
        revision = await admin.put(key, "model: c\n")  # retried until a new leader takes it

        assert (await w.until_read(b"model: c\n")).version == str(revision)
        assert (await Admin(*others).leader()) in others

        # A member cut off from the others must not keep serving a stale watch: etcd drops
        # it (we ask with hasleader), and the source keeps trying until there is a quorum.
        others[0].kill()
        await log_events.wait("etcd_watch_lost", error="no leader")
        for member in (leader, others[0]):
            member.spawn()
        for member in (leader, others[0]):
            await member.await_healthy()
        revision = await admin.put(key, "model: d\n")
        assert (await w.until_read(b"model: d\n")).version == str(revision)


# -- TLS and auth ------------------------------------------------------------------------------


async def test_tls_client_certificates_and_auth(tmp_path: Path, log_events: LogEvents) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    tls = make_tls(certs)
    member = Member("tls", tmp_path / "data", tls=tls)
    member.spawn()
    try:
        await member.await_healthy()
        root = Admin(member)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("/v3/auth/user/add", {"name": "root", "password": "root-pw-123"}),
            ("/v3/auth/role/add", {"name": "root"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/user/add", {"name": "app", "password": "hunter2-app-pw"}),
            ("/v3/auth/role/add", {"name": "reader"}),
            ("/v3/auth/role/grant", {"name": "reader", "perm": {"key": "L3Rscy9j", "permType": 0}}),
            ("/v3/auth/user/grant", {"user": "app", "role": "reader"}),
        ]
        for path, body in steps:
            await root.call(path, body)
        first = await root.put("/tls/c", "model: a\n")
        await root.call("/v3/auth/enable", {})
        token = (
            await root.call("/v3/auth/authenticate", {"name": "root", "password": "root-pw-123"})
        )["token"]
        writer = Admin(member, headers={"Authorization": token})

        options: dict[str, Any] = {
            "ca_file": tls.ca,
            "cert_file": tls.client_cert,
            "key_file": tls.client_key,
            "user": "app",
        }
        source = fast("/tls/c", member.endpoint, password="hunter2-app-pw", **options)  # noqa: S106
        assert source.uri.startswith("etcd+https://")
        assert await source.read(1024) == Revision(b"model: a\n", str(first))
        async with watching(source) as w:
            await w.ready()
            revision = await writer.put("/tls/c", "model: b\n")
            assert (await w.until_read(b"model: b\n")).version == str(revision)

            # Setting app's password (to the same value) revokes its tokens; a restart breaks
            # the watch stream. The watch and the reads must authenticate again by themselves.
            await writer.call(
                "/v3/auth/user/changepw", {"name": "app", "password": "hunter2-app-pw"}
            )
            member.kill()
            await member.restart()
            login = {"name": "root", "password": "root-pw-123"}
            token = (await root.call("/v3/auth/authenticate", login))["token"]
            writer = Admin(member, headers={"Authorization": token})
            revision = await writer.put("/tls/c", "model: c\n")
            assert (await w.until_read(b"model: c\n")).version == str(revision)
            await writer.call(
                "/v3/auth/user/changepw", {"name": "app", "password": "hunter2-app-pw"}
            )
            assert (await source.read(1024)).content == b"model: c\n"  # re-authenticated

        wrong = fast("/tls/c", member.endpoint, password="wrong-pw-456", **options)  # noqa: S106
        with pytest.raises(ConfigReadError, match="authentication failed") as err:
            await wrong.read(1024)
        async with watching(wrong) as w:
            await log_events.wait("etcd_watch_lost")
            assert not w.is_ready.is_set()
        for text in (
            repr(source),
            source.uri,
            repr(vars(source)),
            str(err.value),
            repr(log_events.entries),
        ):
            assert "hunter2" not in text
            assert "wrong-pw" not in text
    finally:
        member.kill()


class LogEvents:
    """Every structlog event while installed, and a way to await one (rather than poll)."""

    def __init__(self) -> None:
        self.entries: list[MutableMapping[str, Any]] = []
        self._new = asyncio.Event()

    def __call__(self, _: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        self.entries.append(event_dict)
        self._new.set()
        raise structlog.DropEvent

    async def wait(self, event: str, **fields: str) -> MutableMapping[str, Any]:
        """The first ``event`` whose ``fields`` contain the given texts, once it is logged."""

        def match(entry: MutableMapping[str, Any]) -> bool:
            return entry.get("event") == event and all(
                text in str(entry.get(k)) for k, text in fields.items()
            )

        with anyio.fail_after(WAIT):
            while not any(match(e) for e in self.entries):
                self._new.clear()
                await self._new.wait()
        return next(e for e in self.entries if match(e))


@pytest.fixture
def log_events() -> Iterator[LogEvents]:
    events = LogEvents()
    previous = structlog.get_config()["processors"]
    structlog.configure(processors=[events])
    try:
        yield events
    finally:
        structlog.configure(processors=previous)


# -- the optional extra ------------------------------------------------------------------------


def test_import_hotreload_etcd_needs_no_client_library() -> None:
    """``import hotreload`` must work without the extra; creating a source says what to do."""
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "import hotreload, hotreload._etcd\n"
        "try:\n"
        "    hotreload._etcd.EtcdSource('/k')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install -e ".[etcd]" (from a checkout of hotreload)' in out.stdout


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="both user and password"):
        EtcdSource("/k", user="app")
    with pytest.raises(ValueError, match="http or https"):
        EtcdSource("/k", endpoints=["grpc://127.0.0.1:2379"])
    with pytest.raises(ValueError, match="must not be empty"):
        EtcdSource("")
    assert "secret-value" not in repr(EtcdSource("/k", user="u", password="secret-value"))  # noqa: S106
