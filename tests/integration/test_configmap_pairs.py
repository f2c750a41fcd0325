"""One kubelet update of several ConfigMap keys is one commit: never one key's old content
with another key's new content (issue 15, "one commit per ConfigMap update").

The writer is a real thread doing kubelet's ``..data`` swap while the reloader reads, so a
read that went through the visible paths one after the other would pair two generations.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from prometheus_client import CollectorRegistry

import hotreload._layers as layers_module
from hotreload import HotReloader, Layer, Layers, Snapshot
from hotreload import _file_source as file_source
from hotreload.testing import ConfigMapVolume

UPDATES = 300


class Pair(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    a: int
    b: int


class Pacer:
    """Lets the writer thread go on only once the reloader has validated a version since the
    writer's last update (or after a bound), so kubelet's swaps and the reads interleave all
    through the run instead of one burst of writes followed by reads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def validated(self, _config: object = None) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def mark(self) -> int:
        with self._changed:
            return self._count

    def wait_past(self, mark: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._count > mark, timeout=2.0)


def pair_files(i: int) -> dict[str, str]:
    return {"a.yaml": f"a: {i}\n", "b.yaml": f"b: {i}\n"}


async def test_no_commit_pairs_old_and_new_keys_over_300_updates(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    volume = ConfigMapVolume(tmp_path / "cm", pair_files(0))
    seen: list[tuple[int, int]] = []  # every version the pipeline validated
    committed: list[tuple[int, int]] = []

    pacer = Pacer()

    def record(config: Pair) -> None:
        seen.append((config.a, config.b))
        pacer.validated()

    async def hook(new: Snapshot[Pair], old: Snapshot[Pair]) -> None:
        committed.append((new.config.a, new.config.b))

    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(1, UPDATES + 1):
                mark = pacer.mark()
                volume.update(pair_files(i))
                pacer.wait_past(mark)
        finally:
            done.set()

    async with HotReloader(
        [volume.path("a.yaml"), volume.path("b.yaml")],
        schema=Pair,
        registry=registry,
        validators=[record],
        on_apply=[hook],
    ) as reloader:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, writer)
            while not done.is_set():  # read as often as we can while kubelet writes
                await reloader.reload()
        final = await reloader.reload()
        assert final.error is None
        assert (reloader.config.a, reloader.config.b) == (UPDATES, UPDATES)

    mixed = [p for p in seen if p[0] != p[1]]
    assert mixed == []
    assert all(a == b for a, b in committed)
    assert len(committed) >= UPDATES // 10  # the race really ran: reads between updates
    # Generations only move forward: each commit is a newer update than the one before.
    assert [a for a, _ in committed] == sorted({a for a, _ in committed})


def test_a_read_that_straddles_a_swap_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: kubelet swaps ``..data`` (and removes the old generation) right after
    the first key is read. The read must not return key a from one update and b from the next.
    """
    volume = ConfigMapVolume(tmp_path / "cm", pair_files(1))
    layers = Layers(volume.path("a.yaml"), volume.path("b.yaml"))
    real_read = file_source.read_file
    swapped: list[str] = []

    def read_then_swap(path: str, max_bytes: int, source: str) -> bytes:
        data = real_read(path, max_bytes, source)
        if not swapped:
            swapped.append(path)
            volume.update(pair_files(2))
        return data

    monkeypatch.setattr(layers_module, "read_file", read_then_swap)
    document = layers.document(layers.read_now(1 << 20).content)
    assert document.data == {"a": 2, "b": 2}
    assert swapped  # the swap did happen in the middle of a read


def test_without_kubelet_layout_files_are_read_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    (tmp_path / "..data").mkdir()  # a stray ..data directory that is not kubelet's link
    (tmp_path / "..data" / "a.yaml").write_text("a: 2\n")
    layers = Layers(tmp_path / "a.yaml")
    assert layers.document(layers.read_now(1 << 20).content).data == {"a": 1}


# -- the TLS pair ---------------------------------------------------------------------------------


class Tls(msgspec.Struct, frozen=True):
    crt: str
    key: str


class WithTls(msgspec.Struct, frozen=True):
    tls: Tls


def _self_signed(name: str, directory: Path) -> tuple[str, str]:
    """A real key pair and self-signed certificate (``cryptography`` if installed, else the
    openssl CLI)."""
    try:
        return _with_cryptography(name)
    except ImportError:
        pass
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the cryptography package or the openssl CLI")
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return crt.read_text(), key.read_text()


def _with_cryptography(name: str) -> tuple[str, str]:
    import datetime

    from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found,unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found,unused-ignore]
        ec,
    )
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]

    key: Any = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crt_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return crt_pem, key_pem


@pytest.mark.timeout(120)
async def test_an_ssl_context_is_never_built_from_a_mismatched_tls_pair(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    pairs = [_self_signed(name, tmp_path) for name in ("one", "two")]
    volume = ConfigMapVolume(tmp_path / "cm", {"tls.crt": pairs[0][0], "tls.key": pairs[0][1]})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    built: list[str] = []
    mismatched: list[str] = []

    def context_for(tls: Tls) -> ssl.SSLContext:
        # load_cert_chain checks the key belongs to the certificate ("key values mismatch").
        (scratch / "c.pem").write_text(tls.crt)
        (scratch / "k.pem").write_text(tls.key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(scratch / "c.pem", scratch / "k.pem")
        return context

    async def build(new: Snapshot[WithTls], old: Snapshot[WithTls]) -> None:
        try:
            context_for(new.config.tls)
        except ssl.SSLError as exc:
            mismatched.append(str(exc))
            raise
        built.append(new.config.tls.crt)

    layers = [
        Layer(volume.path("tls.crt"), format="text", at="tls.crt"),
        Layer(volume.path("tls.key"), format="text", at="tls.key"),
    ]
    updates = 100
    done = threading.Event()
    pacer = Pacer()

    def writer() -> None:
        try:
            for i in range(1, updates + 1):
                crt, key = pairs[i % 2]
                mark = pacer.mark()
                volume.update({"tls.crt": crt, "tls.key": key})
                pacer.wait_past(mark)
        finally:
            done.set()

    async with HotReloader(
        layers, schema=WithTls, registry=registry, on_apply=[build], validators=[pacer.validated]
    ) as r:
        context_for(r.config.tls)  # the first pair is a real, matching pair
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, writer)
            while not done.is_set():
                await r.reload()
        await r.reload()
        assert r.config.tls.crt == pairs[updates % 2][0]
    assert mismatched == []
    assert len(built) >= updates // 10  # contexts were rebuilt while the pair kept changing
