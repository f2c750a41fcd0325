"""``hotreload demo --tls``: the demo's certificate, made on the spot in a kubelet-style
Secret volume, and a thread that renews it every ``rotate`` seconds (cert-manager's part)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ..testing import ConfigMapVolume
from ._make import self_signed
from ._servers import UvicornTLS

__all__ = ["DemoCertificates"]


class DemoCertificates:
    """``directory/tls.crt`` and ``tls.key`` through ``..data``, renewed by `rotate_every`."""

    def __init__(self, directory: Path, say: Callable[[str], None]) -> None:
        self._say = say
        shutil.rmtree(directory, ignore_errors=True)  # a kept --config-dir: start afresh
        first = self_signed("localhost", days=90)
        self.volume = ConfigMapVolume(directory, {"tls.crt": first.cert, "tls.key": first.key})
        self.factory = UvicornTLS(
            self.volume.path("tls.crt"),
            self.volume.path("tls.key"),
            name="demo-tls",
            namespace="holmesgpt",
            poll_interval=5.0,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        say(f"hotreload demo: TLS certificate serial {first.serial} in {directory}")

    def serial(self) -> str | None:
        live = self.factory.live
        info = None if live is None else live.info
        return None if info is None else info.serial

    def renew(self) -> None:
        pair = self_signed("localhost", days=90)
        self.volume.update({"tls.crt": pair.cert, "tls.key": pair.key})
        self._say(f"hotreload demo: renewed the TLS certificate: serial {pair.serial}")

    def rotate_every(self, seconds: float) -> None:
        def loop() -> None:
            while not self._stop.wait(seconds):
                self.renew()

        self._thread = threading.Thread(target=loop, name="hotreload-demo-tls", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
