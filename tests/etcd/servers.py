"""Real etcd servers for the etcd source's tests, on ephemeral loopback ports.

The ``etcd`` binary comes from Debian's ``etcd-server`` (``.ci/run`` installs it). Without it
the tests fail in CI (``CI`` set) and are skipped elsewhere. Health is awaited by polling
``/health``, never by sleeping a fixed time; every process is SIGKILLed at teardown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ETCD = shutil.which("etcd")
_HEALTH_TIMEOUT = 15.0


def require_etcd() -> str:
    """The etcd binary's path; a failure in CI and a skip elsewhere when it is missing."""
    if ETCD is None:
        message = "the etcd binary is missing: install Debian's etcd-server (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return ETCD


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


@dataclass
class Member:
    """One etcd process. ``kill()`` SIGKILLs it; ``restart()`` starts it again with the same
    data dir and ports and waits until it is healthy."""

    name: str
    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    cluster: str = ""  # --initial-cluster; a single-member cluster when empty
    tls: TLSFiles | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def spawn(self) -> None:
        binary = require_etcd()
        args = [
            binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.cluster or f'{self.name}={self.peer_url}'}",
            "--initial-cluster-token=hotreload-tests",
            # Fast elections: a lost leader is replaced in well under a second.
            "--heartbeat-interval=25",
            "--election-timeout=250",
            "--log-level=warn",
        ]
        if self.tls is not None:
            args += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        log = (self.data_dir.parent / f"{self.name}.log").open("ab")
        with log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            log = (self.data_dir.parent / f"{self.name}.log").read_text(errors="replace")
            pytest.fail(f"etcd {self.name} exited:\n{log[-3000:]}")

    def wait_healthy(self) -> None:
        """Block until ``/health`` says true (for fixtures, before any event loop runs)."""
        deadline = time.monotonic() + _HEALTH_TIMEOUT
        with httpx.Client(verify=self._verify(), trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/health").json().get("health") == "true":
                        return
                time.sleep(0.02)  # sleep-ok: polling an external process until it serves
        pytest.fail(f"etcd {self.name} not healthy after {_HEALTH_TIMEOUT} s")

    async def await_healthy(self) -> None:
        """`wait_healthy` for async tests: the loop keeps running while we wait."""
        deadline = time.monotonic() + _HEALTH_TIMEOUT
        async with httpx.AsyncClient(verify=self._verify(), trust_env=False, timeout=1) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    reply = await client.get(self.url + "/health")
                    if reply.json().get("health") == "true":
                        return
                await asyncio.sleep(0.02)  # sleep-ok: polling etcd until it serves
        pytest.fail(f"etcd {self.name} not healthy after {_HEALTH_TIMEOUT} s")

    async def restart(self) -> None:
        self.spawn()
        await self.await_healthy()

    def _verify(self) -> ssl.SSLContext | bool:
        return self.tls.client_context() if self.tls is not None else False


@dataclass
class TLSFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_tls(directory: Path) -> TLSFiles:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make test certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Explicit CA extensions: Python 3.13's default context verifies with X509_STRICT.
    ca_ext = ("-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-x509", *key, *ca_ext, "-days", "2", "-keyout", "ca-key.pem", "-out", "ca.pem",
        "-subj", "/CN=hotreload test CA")  # fmt: skip
    # etcd's gateway dials its own gRPC port with the server certificate: it needs clientAuth.
    for name, usage in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        (directory / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1\n"
            f"extendedKeyUsage={usage}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        # No CN: with auth on, etcd's gateway refuses client certificates that carry one.
        subject = f"/O=hotreload/OU={name}"
        run("req", *key, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subject)
        ca = ("-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            *ca,
            "-out",
            f"{name}.pem",
            "-extfile",
            f"{name}.ext",
        )
    return TLSFiles(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
        directory / "client.pem",
        directory / "client-key.pem",
    )


class Admin:
    """Writes to etcd for the tests, through the same JSON gateway, trying each URL in turn
    (so it keeps working while a cluster elects a new leader)."""

    def __init__(self, *members: Member, headers: dict[str, str] | None = None) -> None:
        self.members = members
        self.headers = headers or {}

    async def call(self, path: str, body: dict[str, Any], *, within: float = 10.0) -> Any:
        deadline = time.monotonic() + within
        problem = ""
        while time.monotonic() < deadline:
            for member in self.members:
                if member.proc is None:
                    continue
                async with httpx.AsyncClient(
                    verify=member._verify(), trust_env=False, timeout=2.0
                ) as client:
                    try:
                        reply = await client.post(
                            member.url + path, json=body, headers=self.headers
                        )
                    except httpx.HTTPError as exc:
                        problem = repr(exc)
                        continue
                if reply.status_code == 200:
                    return reply.json()
                problem = reply.text
            await asyncio.sleep(0.02)  # sleep-ok: retry pacing while a leader is elected
        pytest.fail(f"etcd {path} kept failing: {problem}")

    async def put(self, key: str, value: str | bytes) -> int:
        """Put ``value``; the new store revision (the key's ``mod_revision``)."""
        reply = await self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(reply["header"]["revision"])

    async def delete(self, key: str) -> int:
        reply = await self.call("/v3/kv/deleterange", {"key": b64(key)})
        return int(reply["header"]["revision"])

    async def compact(self, revision: int) -> None:
        await self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    async def leader(self) -> Member:
        """The member that leads the cluster now."""
        for member in self.members:
            status = await Admin(member).call("/v3/maintenance/status", {})
            if status["leader"] == status["header"]["member_id"]:
                return member
        pytest.fail("no member is the leader")


class Gate:
    """A TCP relay between a source and etcd that the test can pause and sever, to decide
    exactly which writes the watcher has seen before it loses its connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.sever()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pause(self) -> None:
        """Hold every byte in both directions, and new connections, until `resume`."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def sever(self) -> None:
        """Drop every connection now, with whatever was held back in it."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._open.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                return
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            for each in (writer, locals().get("up_writer")):
                if isinstance(each, asyncio.StreamWriter):
                    each.transport.abort()
                    self._writers.discard(each)
            self._tasks.discard(task)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            await self._open.wait()
            if sink.transport.is_closing():
                break
            sink.write(data)
            await sink.drain()
        sink.transport.abort()
