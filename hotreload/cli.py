"""The ``hotreload`` command: vet a config before it ships, watch one live, or try the demo.

* ``hotreload check FILE --schema holmes|module:Class [--json]``: exit 0 if valid, 1 if not,
  2 on a usage error; errors carry the line/column or field path (like ``nginx -t``).
* ``hotreload watch FILE --schema ...``: run a reloader and print one line per outcome.
* ``hotreload demo``: a Holmes-style config in a temp directory, reloaded live as you edit it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from ._errors import ConfigError
from ._fields import FieldPolicy
from ._logging import filter_by_stdlib_level
from ._outcome import ReloadOutcome
from ._parsing import format_for
from ._pipeline import Pipeline
from ._reloader import HotReloader
from .holmes import ApiConfig

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

DEMO_CONFIG = """\
# The demo's config: edit and save, and watch the other terminal.
llm:
  provider: openai
  model: gpt-4
  temperature: 0.2
  api_key: sk-demo-not-a-real-key   # secrets never appear in logs
toolsets:
  kubernetes: {enabled: true}
  prometheus: {enabled: true}
log_level: INFO
api_port: 8080   # restart-required: a change here waits for a restart
"""


class _UsageError(Exception):
    pass


def _load_schema(spec: str) -> Any:
    if spec == "holmes":
        return ApiConfig
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise _UsageError(f"--schema must be 'holmes' or 'module:Class', not {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise _UsageError(f"cannot load schema {spec!r}: {exc}") from None


def _error_dict(error: ConfigError) -> dict[str, Any]:
    return {
        "file": error.source,
        "reason": error.reason,
        "message": error.message,
        "line": getattr(error, "line", None),
        "column": getattr(error, "column", None),
        "field_path": getattr(error, "field_path", None),
        "error": str(error),
    }


def _check(args: argparse.Namespace) -> int:
    schema = _load_schema(args.schema)
    path = str(args.file)
    pipeline: Pipeline[Any] = Pipeline(
        schema,
        source=path,
        fmt=args.format or format_for(path),
        max_bytes=args.max_bytes,
        validators=(),
        policy=FieldPolicy(schema),
    )
    try:
        active = pipeline.load(pipeline.read(path))
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"valid": False, **_error_dict(exc)}))
        else:
            print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"valid": True, "file": path, "config_hash": active.config_hash}))
    else:
        print(f"ok: {path} (config_hash {active.config_hash[:12]})")
    return EXIT_OK


def _outcome_line(outcome: ReloadOutcome, as_json: bool) -> str:
    if as_json:
        record: dict[str, Any] = {
            "result": outcome.result.value,
            "applied": outcome.applied,
            "generation": outcome.generation,
            "trigger": outcome.trigger,
            "config_hash": outcome.config_hash,
            "changed": list(outcome.changed),
            "restart_required": list(outcome.restart_required),
            "duration_ms": round(outcome.duration * 1000, 3),
        }
        if outcome.error is not None:
            record["error"] = _error_dict(outcome.error)
        return json.dumps(record)
    line = f"[gen {outcome.generation}] {outcome.result.value} ({outcome.trigger})"
    if outcome.changed:
        line += f" changed: {', '.join(outcome.changed)}"
    if outcome.restart_required:
        line += f" restart required: {', '.join(outcome.restart_required)}"
    if outcome.error is not None:
        line += f" - keeping previous: {outcome.error}"
    return line


async def _watch(path: str, schema: Any, *, as_json: bool, interesting_only: bool) -> None:
    async with HotReloader(path, schema=schema, name="cli") as reloader:
        outcomes = reloader.outcomes()
        snap = reloader.snapshot
        if as_json:
            print(
                json.dumps({"result": "loaded", "generation": 1, "config_hash": snap.config_hash})
            )
        else:
            print(f"[gen 1] loaded {path} (config_hash {snap.config_hash[:12]})", flush=True)
        async for outcome in outcomes:
            if interesting_only and outcome.trigger == "rescan" and outcome.error is None:
                continue
            print(_outcome_line(outcome, as_json), flush=True)


def _run_watch(args: argparse.Namespace) -> int:
    schema = _load_schema(args.schema)
    try:
        asyncio.run(_watch(str(args.file), schema, as_json=args.json, interesting_only=False))
    except ConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    owned = args.config_dir is None
    directory = Path(tempfile.mkdtemp(prefix="hotreload-demo-")) if owned else args.config_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    if not path.exists():
        path.write_text(DEMO_CONFIG)
    print(f"hotreload demo: edit {path}", flush=True)
    print("Every save is validated and applied live; break the YAML to see it kept.", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        asyncio.run(_watch(str(path), ApiConfig, as_json=False, interesting_only=True))
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotreload", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a config file and exit 0 (valid) or 1")
    check.add_argument("file", type=Path)
    check.add_argument("--schema", required=True, help="'holmes' or 'module:Class'")
    check.add_argument("--format", choices=("yaml", "json", "toml"))
    check.add_argument("--max-bytes", type=int, default=1 << 20)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(run=_check)

    watch = sub.add_parser("watch", help="reload a config live and print each outcome")
    watch.add_argument("file", type=Path)
    watch.add_argument("--schema", required=True, help="'holmes' or 'module:Class'")
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    watch.set_defaults(run=_run_watch)

    demo = sub.add_parser("demo", help="try it: edit a Holmes-style config and see it reload")
    demo.add_argument("--config-dir", type=Path, default=None)
    demo.set_defaults(run=_run_demo)
    return parser


def _configure_logging() -> None:
    """The CLI owns its process, so it (unlike the library) sets logging up: events to stderr,
    filtered by the stdlib root level that the config's ``log_level`` drives."""
    logging.getLogger().setLevel(logging.INFO)
    structlog.configure(
        processors=[
            filter_by_stdlib_level(),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("watch", "demo"):
        _configure_logging()
    try:
        code: int = args.run(args)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"hotreload: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
