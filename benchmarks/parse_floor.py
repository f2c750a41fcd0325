"""``Pipeline.evaluate`` against its floor on the demo config (the HolmesGPT API's format):
``yaml.load(CSafeLoader)`` + ``msgspec.convert`` + sha256 of the same bytes, with and without
two unknown keys. Process CPU time, the best of several rounds (issue #23, "the hot path").

    PYTHONPATH=. python benchmarks/parse_floor.py
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import yaml

from hotreload._demo import DEMO_CONFIG
from hotreload._fields import FieldPolicy
from hotreload._pipeline import Pipeline
from hotreload.holmes import ApiConfig


def version(temperature: float, unknown: bool) -> bytes:
    text = DEMO_CONFIG.replace("temperature: 0.7", f"temperature: {temperature}")
    if unknown:  # a typo inside a known section, and one at the top
        text = text.replace("  max_retries: 3\n", "  max_retries: 3\n  temprature: 0.5\n", 1)
        text += "metrcs_port: 9090\n"
    return text.encode()


def best(fn: Callable[[], object], number: int = 300, rounds: int = 9) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(number):
            fn()
        times.append((time.process_time() - started) / number)
    return min(times)


def main() -> None:
    p = Pipeline(
        ApiConfig,
        source="demo.yaml",
        fmt="yaml",
        max_bytes=1 << 20,
        validators=(),
        policy=FieldPolicy(ApiConfig),
    )
    convert = p._schema.convert
    for unknown in (False, True):
        old, new = version(0.7, unknown), version(0.8, unknown)
        active = p.load(old)
        evaluation = p.evaluate(new, active)
        assert evaluation.result.value == "config_changed", evaluation
        assert len(evaluation.unknown or ()) == (2 if unknown else 0)

        def floor(raw: bytes = new) -> None:
            convert(yaml.load(raw, Loader=yaml.CSafeLoader))
            hashlib.sha256(raw).hexdigest()

        def evaluate(raw: bytes = new, active: object = active) -> None:
            p.evaluate(raw, active)  # type: ignore[arg-type]

        f, e = best(floor), best(evaluate)
        print(
            f"unknown keys: {2 if unknown else 0}  floor {f * 1e6:.0f} µs  "
            f"evaluate {e * 1e6:.0f} µs  ratio {e / f:.2f}x"
        )


if __name__ == "__main__":
    main()
