"""TLS rotation (issue 27): how soon new handshakes get a rotated certificate, and what the
rotating context costs a handshake.

Swap → first new handshake: a `ServerTLS` over a kubelet-style secret volume, served by
``asyncio.start_server``; a client thread handshakes back to back (blocking sockets, a fresh
connection each time, no session reuse) and records when each handshake ended and which serial
it saw. Each rotation is one ``..data`` swap of ``tls.crt`` + ``tls.key``; from the same
instant t0 (just before the swap) we take the engine's write → visible (the commit, seen on
``changes()``) and the end of the first handshake that presented the new serial. The second
includes the wait for a handshake that *started* after the commit: it is bounded below by the
commit and above by the commit plus one handshake.

Handshake cost: full TLS 1.3 handshakes (P-256, both sides, in memory: ``ssl.MemoryBIO``, so no
socket or scheduler noise) against the rotating context (its ``sni_callback`` hands each
handshake the generation's context) and against a plain context with the same certificate,
interleaved in blocks; the ratio is the figure (target ≤ 1.05). The same end to end
(``handshake_cost_sockets``): ``asyncio.start_server`` on each context, a client thread over
loopback TCP.

    python benchmarks/tls.py [--quick] [--rotations N] [--handshakes N] [--json out.json]
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import parser, quiet_logs, summary, write_results
from cryptography import x509
from prometheus_client import CollectorRegistry

from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued, ServerTLS, self_signed
from hotreload.tls._checks import load_pair


def files(pair: Issued) -> dict[str, str]:
    return {"tls.crt": pair.cert, "tls.key": pair.key}


def client_context(pairs: list[Issued]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata="".join(p.cert for p in pairs))
    return context


class Client(threading.Thread):
    """Back-to-back handshakes to 127.0.0.1:port: (end time, serial) of each; errors counted."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__(daemon=True)
        self.port, self.context = port, context
        self.seen: list[tuple[float, str]] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import socket

        while not self.stop.is_set():
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port)) as raw,
                    self.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
                ):
                    der = tls.getpeercert(binary_form=True)
                    ended = time.perf_counter()
                    assert der is not None
                    serial = f"{x509.load_der_x509_certificate(der).serial_number:X}"
                    self.seen.append((ended, serial))
            except (OSError, ssl.SSLError):
                self.errors += 1


async def swap_to_handshake(rotations: int) -> dict[str, Any]:
    pairs = [self_signed(f"p{i}.bench") for i in range(4)]
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        volume = ConfigMapVolume(Path(directory) / "tls", files(pairs[0]))
        tls = ServerTLS(
            volume.path("tls.crt"),
            volume.path("tls.key"),
            registry=CollectorRegistry(),
            poll_interval=0,
        )

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        async with tls:
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.context)
            port = server.sockets[0].getsockname()[1]
            client = Client(port, client_context(pairs))
            client.start()
            changes = tls.reloader.changes()
            visible: list[float] = []
            first_new: list[float] = []
            for i in range(1, rotations + 1):
                pair = pairs[i % len(pairs)]
                mark = len(client.seen)
                t0 = time.perf_counter()
                volume.update(files(pair))
                await anext(changes)
                visible.append(time.perf_counter() - t0)
                while True:  # the first handshake, after t0, that saw the new certificate
                    hit = next((t for t, s in client.seen[mark:] if s == pair.serial), None)
                    if hit is not None:
                        first_new.append(hit - t0)
                        break
                    await asyncio.sleep(0.001)  # a benchmark: poll the client thread's list
            client.stop.set()
            await asyncio.to_thread(client.join)
            server.close()
            await server.wait_closed()
    return {
        "engine_write_to_visible": summary(visible),
        "swap_to_first_new_handshake": summary(first_new),
        "handshakes": len(client.seen),
        "handshake_errors": client.errors,
        "rotations": rotations,
    }


def handshake(server_context: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """One full handshake between two SSLObjects over memory BIOs."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    s = server_context.wrap_bio(s_in, s_out, server_side=True)
    c_done = s_done = False
    while not (c_done and s_done):
        if not c_done:
            try:
                c.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not s_done:
            try:
                s.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())


async def handshake_cost(count: int, block: int = 50) -> dict[str, Any]:
    pair = self_signed("cost.bench")
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        volume = ConfigMapVolume(Path(directory) / "tls", files(pair))
        tls = ServerTLS(
            volume.path("tls.crt"), volume.path("tls.key"), registry=CollectorRegistry()
        )
        async with tls:
            plain = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            plain.minimum_version = ssl.TLSVersion.TLSv1_2
            load_pair(plain, pair.cert, pair.key)
            client = client_context([pair])
            timings: dict[str, list[float]] = {"plain": [], "rotating": []}
            for _ in range(20):  # warm-up
                handshake(plain, client)
                handshake(tls.context, client)
            for i in range(count // block):
                order = [("plain", plain), ("rotating", tls.context)]
                if i % 2:
                    order.reverse()
                for name, context in order:
                    start = time.perf_counter()
                    for _ in range(block):
                        handshake(context, client)
                    timings[name].append((time.perf_counter() - start) / block)
    plain_us = statistics.median(timings["plain"]) * 1e6
    rotating_us = statistics.median(timings["rotating"]) * 1e6
    return {
        "handshakes_each": block * (count // block),
        "plain_us": round(plain_us, 1),
        "rotating_us": round(rotating_us, 1),
        "ratio": round(rotating_us / plain_us, 4),
        "callback_us": round(rotating_us - plain_us, 1),
    }


def socket_handshakes(port: int, client: ssl.SSLContext, count: int) -> float:
    """Seconds per handshake over loopback TCP, fresh connection each (client thread)."""
    import socket

    start = time.perf_counter()
    for _ in range(count):
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            pass
    return (time.perf_counter() - start) / count


async def socket_cost(count: int, block: int = 50) -> dict[str, Any]:
    """The same comparison end to end: ``asyncio.start_server`` on each context, a client
    thread connecting over loopback; blocks interleaved (both servers on this loop)."""
    pair = self_signed("cost.bench")
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        volume = ConfigMapVolume(Path(directory) / "tls", files(pair))
        tls = ServerTLS(
            volume.path("tls.crt"), volume.path("tls.key"), registry=CollectorRegistry()
        )

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        async with tls:
            plain = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            plain.minimum_version = ssl.TLSVersion.TLSv1_2
            load_pair(plain, pair.cert, pair.key)
            servers = {
                "plain": await asyncio.start_server(handle, "127.0.0.1", 0, ssl=plain),
                "rotating": await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.context),
            }
            ports = {name: srv.sockets[0].getsockname()[1] for name, srv in servers.items()}
            client = client_context([pair])
            timings: dict[str, list[float]] = {"plain": [], "rotating": []}
            for port in ports.values():  # warm-up
                await asyncio.to_thread(socket_handshakes, port, client, 10)
            for i in range(count // block):
                names = ["plain", "rotating"] if i % 2 == 0 else ["rotating", "plain"]
                for name in names:
                    per = await asyncio.to_thread(socket_handshakes, ports[name], client, block)
                    timings[name].append(per)
            for srv in servers.values():
                srv.close()
                await srv.wait_closed()
    plain_us = statistics.median(timings["plain"]) * 1e6
    rotating_us = statistics.median(timings["rotating"]) * 1e6
    return {
        "handshakes_each": block * (count // block),
        "plain_us": round(plain_us, 1),
        "rotating_us": round(rotating_us, 1),
        "ratio": round(rotating_us / plain_us, 4),
    }


async def run(rotations: int, handshakes: int) -> dict[str, Any]:
    return {
        "swap": await swap_to_handshake(rotations),
        "handshake_cost": await handshake_cost(handshakes),
        "handshake_cost_sockets": await socket_cost(max(handshakes // 2, 100)),
    }


def main() -> None:
    p = parser(__doc__, "tls")
    p.add_argument("--rotations", type=int, default=None)
    p.add_argument("--handshakes", type=int, default=None)
    args = p.parse_args()
    quiet_logs()
    rotations = args.rotations or (30 if args.quick else 200)
    handshakes = args.handshakes or (400 if args.quick else 4000)
    results = asyncio.run(run(rotations, handshakes))
    write_results("tls", args, results)
    for name, row in results.items():
        print(f"{name:15} {row}")


if __name__ == "__main__":
    main()
