"""msgspec vs pydantic as the schema, in one run: the cost of a commit and of a read.

Both schemas describe the same ~2.5 KB nested config (an LLM section, twelve toolsets in a
mapping, a restart-required port), field for field; the pydantic one is a frozen v2 model.

* ``steps``: the schema's own work in a reload, in µs: ``convert`` (parsed data to a config),
  ``to_builtins`` + the canonical hash, and the whole pure ``Pipeline.evaluate`` of a changed
  version (parse, convert, diff, restart-required retention, hash). YAML parsing is the same
  for both and is most of ``evaluate``.
* ``commit``: a real `HotReloader` on a real file with the real watcher; each sample replaces
  the file (temp + rename) and takes the ``duration`` of the outcome that commits it: the
  worker's read, evaluate, swap, log and metrics, without the watcher's own delay.
* ``read``: ns per ``reloader.config`` and per ``reloader.config.llm.model`` (loop overhead
  subtracted, as in readcost.py), beside a plain attribute read.

Rounds alternate msgspec and pydantic so both see the same machine load. A step or a read is
the best of its rounds (as timeit advises: the least disturbed one, on a shared machine); a
commit is a percentile over its samples. The ``pydantic_vs_msgspec`` ratios are what to quote.

    python benchmarks/schemas.py [--quick] [--samples N] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pydantic
import yaml
from _common import parser, quiet_logs, summary, write_results
from prometheus_client import CollectorRegistry
from readcost import per_read_ns

from hotreload import HotReloader, RestartRequired
from hotreload._fields import FieldPolicy
from hotreload._pipeline import Pipeline
from hotreload._snapshot import canonical_hash
from hotreload.testing import write_atomic

TOOLSETS = 12


class MsgLlm(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    provider: str
    model: str
    api_key: str = ""
    endpoint: str | None = None
    temperature: float = 0.7
    max_tokens: int = 4096
    timeout_s: float = 60.0


class MsgToolset(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    url: str = ""
    token: str = ""
    retries: int = 3
    tags: list[str] = []


class MsgSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    llm: MsgLlm
    api_port: Annotated[int, RestartRequired] = 8080
    log_level: str = "INFO"
    toolsets: dict[str, MsgToolset] = {}
    public_endpoints: list[str] = []


FROZEN = pydantic.ConfigDict(frozen=True, extra="forbid")


class PydLlm(pydantic.BaseModel):
    model_config = FROZEN

    provider: str
    model: str
    api_key: str = ""
    endpoint: str | None = None
    temperature: float = 0.7
    max_tokens: int = 4096
    timeout_s: float = 60.0


class PydToolset(pydantic.BaseModel):
    model_config = FROZEN

    enabled: bool = True
    url: str = ""
    token: str = ""
    retries: int = 3
    tags: list[str] = []


class PydSettings(pydantic.BaseModel):
    model_config = FROZEN

    llm: PydLlm
    api_port: Annotated[int, RestartRequired] = 8080
    log_level: str = "INFO"
    toolsets: dict[str, PydToolset] = {}
    public_endpoints: list[str] = []


SCHEMAS: dict[str, Any] = {"msgspec": MsgSettings, "pydantic": PydSettings}


def document(version: int) -> str:
    """The config at ``version``: the LLM model and one toolset's retries change with it."""
    lines = [
        "llm:",
        "  provider: openai",
        f"  model: gpt-4o-{version}",
        "  api_key: sk-bench-0123456789abcdef0123456789abcdef",
        "  endpoint: https://llm.internal.example:8443/v1",
        "  temperature: 0.2",
        "  max_tokens: 8192",
        "api_port: 8080",
        "log_level: INFO",
        "public_endpoints: [/health, /ready, /metrics, /docs]",
        "toolsets:",
    ]
    for t in range(TOOLSETS):
        lines += [
            f"  toolset-{t:02d}:",
            "    enabled: true",
            f"    url: https://tool-{t:02d}.svc.cluster.local:9090/api/v1",
            f"    token: tok-{t:02d}-abcdefabcdefabcdefabcdef",
            f"    retries: {3 + (version % 5 if t == 0 else 0)}",
            "    tags: [observability, kubernetes, on-call]",
        ]
    return "\n".join(lines) + "\n"


def pipeline(schema: Any) -> Pipeline[Any]:
    return Pipeline(
        schema,
        source="bench.yaml",
        fmt="yaml",
        max_bytes=1 << 20,
        validators=(),
        policy=FieldPolicy(schema),
    )


def per_call_us(fn: Any, number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - started) / number * 1e6


def steps(rounds: int, number: int) -> dict[str, Any]:
    """µs per schema step, the best of alternating rounds."""
    raw = [document(v).encode() for v in (1, 2)]
    data = yaml.load(raw[1], Loader=yaml.CSafeLoader)
    samples: dict[str, dict[str, list[float]]] = {k: {} for k in SCHEMAS}
    for _ in range(rounds):
        for name, schema in SCHEMAS.items():
            p = pipeline(schema)
            adapter = p._schema
            config = adapter.convert(data)
            active = p.load(raw[0])
            measured = {
                "convert_us": per_call_us(lambda a=adapter: a.convert(data), number),
                "to_builtins_and_hash_us": per_call_us(
                    lambda a=adapter, c=config: canonical_hash(a.to_builtins(c)), number
                ),
                "evaluate_changed_version_us": per_call_us(
                    lambda p=p, a=active: p.evaluate(raw[1], a), max(1, number // 20)
                ),
            }
            for key, value in measured.items():
                samples[name].setdefault(key, []).append(value)
    out: dict[str, Any] = {
        name: {key: round(min(v), 2) for key, v in rows.items()} for name, rows in samples.items()
    }
    out["pydantic_vs_msgspec"] = {
        key: round(out["pydantic"][key] / out["msgspec"][key], 2) for key in out["msgspec"]
    }
    out["document_bytes"] = len(raw[1])
    return out


async def commits(samples: int) -> dict[str, Any]:
    """The outcome duration of each commit the watcher triggers, per schema."""
    durations: dict[str, list[float]] = {k: [] for k in SCHEMAS}
    with tempfile.TemporaryDirectory() as d:
        paths = {name: Path(d) / name / "config.yaml" for name in SCHEMAS}
        async with contextlib.AsyncExitStack() as stack:
            reloaders = {}
            for name, schema in SCHEMAS.items():
                paths[name].parent.mkdir()
                paths[name].write_text(document(0))
                reloaders[name] = await stack.enter_async_context(
                    HotReloader(paths[name], schema=schema, name=name, poll_interval=0,
                                registry=CollectorRegistry())
                )  # fmt: skip
            for i in range(1, samples + 1):
                for name, r in reloaders.items():
                    write_atomic(paths[name], document(i))
                    outcome = await r.wait_for_outcome(lambda o: o.applied, timeout=10)
                    durations[name].append(outcome.duration)
    out: dict[str, Any] = {name: summary(v) for name, v in durations.items()}
    out["pydantic_vs_msgspec_p50"] = round(out["pydantic"]["p50_ms"] / out["msgspec"]["p50_ms"], 2)
    return out


async def reads(number: int, repeat: int) -> dict[str, Any]:
    class Holder:
        def __init__(self) -> None:
            self.value = 1

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        env: dict[str, Any] = {"h": Holder()}
        async with contextlib.AsyncExitStack() as stack:
            for name, schema in SCHEMAS.items():
                path = Path(d) / f"{name}.yaml"
                path.write_text(document(1))
                env[name] = await stack.enter_async_context(
                    HotReloader(path, schema=schema, name=name, registry=CollectorRegistry())
                )
            statements = {"loop": "pass", "plain": "h.value"}
            for name in SCHEMAS:
                statements[f"{name}.config"] = f"{name}.config"
                statements[f"{name}.config.llm.model"] = f"{name}.config.llm.model"
            # Interleaved: each repeat times every statement once, so a busy spell on the
            # machine hits all of them alike; the best repeat of each is kept.
            best = dict.fromkeys(statements, float("inf"))
            for _ in range(repeat):
                for key, stmt in statements.items():
                    best[key] = min(best[key], per_read_ns(stmt, env, number, 1))
            loop_ns = best["loop"]
            out["plain_attribute_ns"] = round(best["plain"] - loop_ns, 2)
            for name in SCHEMAS:
                out[name] = {
                    "config_ns": round(best[f"{name}.config"] - loop_ns, 2),
                    "config_llm_model_ns": round(best[f"{name}.config.llm.model"] - loop_ns, 2),
                }
    out["pydantic_vs_msgspec"] = {
        key: round(out["pydantic"][key] / out["msgspec"][key], 2) for key in out["msgspec"]
    }
    return out


def main() -> None:
    p = parser(__doc__, "schemas")
    p.add_argument("--samples", type=int, default=None, help="commits per schema")
    args = p.parse_args()
    quiet_logs()
    rounds, number = (3, 200) if args.quick else (7, 1000)
    results: dict[str, Any] = {"steps": steps(rounds, number)}
    results["commit"] = asyncio.run(commits(args.samples or (50 if args.quick else 300)))
    read_number = 200_000 if args.quick else 2_000_000
    results["read"] = asyncio.run(reads(read_number, 3 if args.quick else 7))
    results["versions"] = {"pydantic": pydantic.VERSION, "msgspec": msgspec.__version__}
    write_results("schemas", args, results)
    for key, row in results.items():
        print(key, row)


if __name__ == "__main__":
    main()
