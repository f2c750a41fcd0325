"""The ``hotreload`` command: vet a config before it ships, watch one live, or try the demo.

* ``hotreload check FILE... --schema PRESET|module:Class [--strict] [--env-prefix P]
  [--explain] [--against OLD] [--json]``: exit 0 if valid, 1 if not, 2 on a usage error; errors
  carry the file, line/column or field path (like ``nginx -t``); several files are layers
  merged in order; keys the schema does not know are listed with their line and a "did you
  mean" (``--strict``: they make the config invalid); ``--explain`` prints each value with its
  origin; ``--against OLD`` lists the changed key paths, secrets as ``***``, and says what a
  reloader running OLD would do with FILE (``applied``, ``restart_required`` with the fields
  whose running value stays, ``refused`` with the fields: exit 1), with the preset's own field
  policies (`PRESET_POLICIES`). The presets are the `PRESETS` table.
* ``hotreload watch FILE... --schema ... [--strict] [--env-prefix P]``: run a reloader (several
  files: layers) and print one line per outcome.
* ``hotreload verdict --etcd URL... --name NAME HASH good|bad [--reason TEXT] [--json]``: an
  operator's verdict on a config_hash, written to the fleet's verdict store in etcd. The first
  verdict wins: exit 0 when written (or the hash already has the same one), 1 when it has the
  other one (printed, with who gave it), 3 when etcd cannot be reached, 2 on a usage error.
* ``hotreload demo``: a Starlette app on 127.0.0.1 serving a HolmesGPT API config from a temp
  directory, reloaded live as you edit it (needs the ``demo`` extra); SIGTERM stops it like
  Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from . import __version__
from ._errors import ConfigError, ConfigRefusedError
from ._fields import FieldPolicy, format_path
from ._file_source import read_file
from ._layers import Layer, Layers
from ._logging import filter_by_stdlib_level
from ._outcome import ReloadOutcome
from ._parsing import format_for
from ._pipeline import Active, Evaluation, Pipeline, Validator
from ._present import (
    diff_records,
    error_dict,
    explain,
    explain_lines,
    outcome_dict,
    outcome_line,
    to_builtins,
)
from ._reloader import HotReloader
from ._unknown import UnknownKey

__all__ = ["PRESETS", "PRESET_LAYERS", "PRESET_POLICIES", "main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

#: ``verdict``'s etcd password, read from the environment so it stays out of ``ps``.
PASSWORD_ENV = "HOTRELOAD_ETCD_PASSWORD"  # noqa: S105 - a variable name, not a password
_HASH = re.compile(r"[0-9a-f]{64}")

#: How to install an extra until the distribution is on the package index.
INSTALL_HINT = 'pip install -e ".[{extra}]"  (from a checkout of hotreload)'

#: ``--schema`` presets: name -> ("module:Schema", "module:validator", ...), imported only when
#: used; ``check`` and ``watch`` run the validators after the schema.
PRESETS: dict[str, tuple[str, ...]] = {
    "holmes": ("hotreload.holmes:ApiConfig",),
    "holmes-toolsets": ("hotreload.holmes:ToolsetCatalog",),
    # upstream HolmesGPT: ~/.holmes/config.yaml or the server's custom_toolset.yaml
    "holmesgpt": ("hotreload.holmesgpt:HolmesGPTConfig",),
    "holmesgpt-models": (
        "hotreload.holmesgpt:ModelList",
        "hotreload.holmesgpt:validate_model_list",
    ),
}

#: The field policies a preset's own reloader runs with (its ``create_reloader``'s defaults):
#: name -> FieldPolicy keyword -> "module:attribute", so ``check --against`` decides as it does.
PRESET_POLICIES: dict[str, dict[str, str]] = {
    "holmes": {"refuse_changes": "hotreload.holmes:REFUSED"},
}

#: How a preset's service layers several files, when not by the generic deep merge: name ->
#: "module:function" taking the paths and the env prefix (``holmes``: ``config.yaml`` then
#: ``sdk-config.yaml``, merged as the service's ConfigManager did).
PRESET_LAYERS: dict[str, str] = {"holmes": "hotreload.holmes:cli_layers"}

_SCHEMA_HELP = (
    "the schema to check against: a preset ("
    + ", ".join(PRESETS)
    + ") or module:Class for your own (imported from the current directory)"
)


class _UsageError(Exception):
    pass


def _load_schema(spec: str) -> tuple[Any, tuple[Validator[Any], ...]]:
    """The schema ``--schema`` names, and the validators its preset runs (none for
    ``module:Class``)."""
    if spec in PRESETS:
        schema, *validators = (_import(target, spec) for target in PRESETS[spec])
        return schema, tuple(validators)
    if ":" not in spec.strip(":"):
        presets = ", ".join(PRESETS)
        raise _UsageError(f"--schema must be a preset ({presets}) or module:Class, not {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    return _import(spec, spec), ()


def _import(target: str, spec: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise _UsageError(f"cannot load schema {spec!r}: {exc}") from None


def _policy_for(spec: str, schema: Any) -> FieldPolicy:
    """The field policy a reloader of ``spec`` runs with (a preset's own, `PRESET_POLICIES`)."""
    options = {
        option: _import(target, spec) for option, target in PRESET_POLICIES.get(spec, {}).items()
    }
    return FieldPolicy(schema, **options)


def _check(args: argparse.Namespace) -> int:
    schema, validators = _load_schema(args.schema)
    policy = _policy_for(args.schema, schema)

    def pipeline_for(path: str, layers: Layers | None = None) -> Pipeline[Any]:
        return Pipeline(
            schema,
            source=path,
            fmt=args.format or format_for(path),
            max_bytes=args.max_bytes,
            validators=validators,
            policy=policy,
            decode=None if layers is None else layers.document,
            strict=args.strict,
        )

    def load(path: str) -> Active[Any]:
        pipeline = pipeline_for(path)
        return pipeline.load(read_file(path, pipeline.max_bytes, path))

    files = [str(f) for f in args.file]
    layers = None
    try:
        if len(files) > 1 or args.env_prefix:
            # Several files (and/or the environment): the layers a reloader would merge.
            layers = _layers_for(args, files)
            path = layers.uri
            raw = layers.read_now(args.max_bytes).content
        else:
            path = files[0]
            raw = read_file(path, args.max_bytes, path)
        pipeline = pipeline_for(path, layers)
        active = pipeline.load(raw)
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"valid": False, **error_dict(exc)}))
        else:
            print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    report: dict[str, Any] = {
        "valid": True,
        "file": path,
        "config_hash": active.config_hash,
        "unknown": [_unknown_dict(key) for key in active.unknown],
    }
    if args.against is not None:
        try:
            old = load(str(args.against))
        except ConfigError as exc:
            raise _UsageError(f"cannot compare --against {args.against}: {exc}") from None
        report["against"] = str(args.against)
        report["changes"] = diff_records(old.builtins, active.builtins, policy)
        # What a reloader running OLD would do with this version: the very same evaluation.
        verdict = _verdict(pipeline.evaluate(raw, old))
        report.update(verdict)
    explained = []
    if args.explain:
        document = pipeline_for(path, layers).document_of(active)
        explained = explain(to_builtins(active.config), document, policy)
        report["explain"] = [
            {"path": e.path, "value": e.value, "origin": e.origin and str(e.origin)}
            for e in explained
        ]
    status = EXIT_INVALID if report.get("valid") is False else EXIT_OK
    if args.json:
        print(json.dumps(report))
        return status
    shown = "ok" if status == EXIT_OK else report["verdict"]  # valid, but refused live
    print(f"{shown}: {path} (config_hash {active.config_hash[:12]})")
    for key in active.unknown:
        print(f"warning: {_unknown_line(path, key)}", file=sys.stderr)
    if active.unknown:
        print(
            f"{len(active.unknown)} unknown key(s) ignored; --strict makes them an error",
            file=sys.stderr,
        )
    if args.against is not None:
        _print_against(report)
    for line in explain_lines(explained):
        print(line)
    return status


def _layers_for(args: argparse.Namespace, files: list[str]) -> Layers:
    """The layers a reloader of ``--schema`` would read ``files`` as: the preset's own
    (`PRESET_LAYERS`), else the generic deep merge."""
    preset = PRESET_LAYERS.get(args.schema)
    if preset is not None and args.format is None:
        layers: Layers = _import(preset, args.schema)(files, args.env_prefix)
        return layers
    items = [Layer(f, format=args.format) for f in files]
    return Layers(*items, env_prefix=args.env_prefix)


def _verdict(evaluation: Evaluation[Any]) -> dict[str, Any]:
    """``verdict``: what a running reloader does with the version ``evaluation`` is of.

    ``refused`` (a ``refuse`` field changed: nothing applies, ``refused`` names the fields),
    ``validation_failed`` (the version with the running restart-required values kept is
    invalid), ``restart_required`` (the rest applies live, the fields in ``restart_required``
    keep their running value until a restart), ``applied``, or ``unchanged``.
    """
    error = evaluation.error
    if isinstance(error, ConfigRefusedError):
        return {
            "verdict": "refused",
            "refused": list(error.fields),
            **error_dict(error),
            "valid": False,
        }
    if error is not None:
        return {"verdict": evaluation.result.value, **error_dict(error), "valid": False}
    kept = [format_path(root) for root, _ in evaluation.restart_required]
    if kept:
        return {"verdict": "restart_required", "restart_required": kept}
    return {"verdict": "applied" if evaluation.changed else "unchanged"}


def _print_against(report: dict[str, Any]) -> None:
    changes = report["changes"]
    print(f"{len(changes)} changed against {report['against']}" + (":" if changes else ""))
    for change in changes:
        flag = "  [restart required]" if change["restart_required"] else ""
        print(f"  {change['path']}: {_shown(change['old'])} -> {_shown(change['new'])}{flag}")
    verdict = report["verdict"]
    if report.get("valid") is False:
        print(f"{verdict.replace('_', ' ')}: {report['error']}", file=sys.stderr)
    elif verdict == "restart_required":
        kept = report["restart_required"]
        keeps = "keeps its" if len(kept) == 1 else "keep their"
        live = "the rest applies live" if len(kept) < len(changes) else "nothing else changed"
        print(f"restart required: {', '.join(kept)} {keeps} running value until a restart; {live}")
    elif verdict == "applied":
        print("applied: a running reloader applies it live")
    else:
        print("unchanged: a running reloader keeps its config")


def _unknown_dict(key: UnknownKey) -> dict[str, Any]:
    return {
        "path": key.dotted,
        "file": key.source,
        "line": key.line,
        "column": key.column,
        "did_you_mean": key.suggestion,
    }


def _unknown_line(path: str, key: UnknownKey) -> str:
    where = key.source or path
    if key.line is not None:
        where = f"{where}:{key.line}:{key.column}"
    hint = "" if key.suggestion is None else f" (did you mean `{key.suggestion}`?)"
    return f"{where}: unknown key `{key.dotted}`{hint}"


def _shown(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value)


def _outcome_line(outcome: ReloadOutcome, as_json: bool) -> str:
    return json.dumps(outcome_dict(outcome)) if as_json else outcome_line(outcome)


async def _watch(
    files: list[str],
    schema: Any,
    validators: tuple[Validator[Any], ...] = (),
    *,
    as_json: bool,
    env_prefix: str | None = None,
    strict: bool = False,
) -> None:
    paths: str | list[str] = files[0] if len(files) == 1 else files
    async with HotReloader(
        paths,
        schema=schema,
        name="cli",
        env_prefix=env_prefix,
        validators=validators,
        strict=strict,
    ) as reloader:
        path = reloader.path
        outcomes = reloader.outcomes()
        snap = reloader.snapshot
        if as_json:
            print(
                json.dumps({"result": "loaded", "generation": 1, "config_hash": snap.config_hash})
            )
        else:
            print(f"[gen 1] loaded {path} (config_hash {snap.config_hash[:12]})", flush=True)
        async for outcome in outcomes:
            print(_outcome_line(outcome, as_json), flush=True)


def _run_watch(args: argparse.Namespace) -> int:
    schema, validators = _load_schema(args.schema)
    try:
        files = [str(f) for f in args.file]
        asyncio.run(
            _watch(
                files,
                schema,
                validators,
                as_json=args.json,
                env_prefix=args.env_prefix,
                strict=args.strict,
            )
        )
    except ConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    try:
        from . import _demo  # noqa: PLC0415 - needs the `demo` extra, only here
    except ImportError as exc:
        print(f"hotreload demo needs the demo extra ({exc.name} is missing):", file=sys.stderr)
        print(f"  {INSTALL_HINT.format(extra='demo')}", file=sys.stderr)
        return EXIT_INVALID
    owned = args.config_dir is None
    directory = Path(tempfile.mkdtemp(prefix="hotreload-demo-")) if owned else args.config_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    fresh = not path.exists()
    if fresh:  # serve writes it again once it knows its port (--port 0)
        path.write_text(_demo.demo_config(args.port or 8000))
    print(f"hotreload demo: edit {path}", flush=True)
    code = EXIT_OK
    # SIGTERM (timeout, docker stop, Kubernetes) stops the demo like Ctrl-C: uvicorn shuts
    # down gracefully, then re-raises the signal it caught, which lands here as _Terminated.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = _demo.serve(path, args.port, tls=args.tls, rotate=args.rotate, fresh=fresh)
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
    print("stopped", flush=True)
    return code


def _config_hash(text: str) -> str:
    if not _HASH.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"a config_hash is 64 lowercase hex digits (as check prints it), not {text!r}"
        )
    return text


def _run_verdict(args: argparse.Namespace) -> int:
    """Write the operator's verdict; the one in force decides the exit status."""
    from ._verdicts import VerdictError, VerdictStore  # noqa: PLC0415 - needs the etcd extra

    password = os.environ.get(PASSWORD_ENV) if args.user is not None else None
    if args.user is not None and password is None:
        raise _UsageError(f"--user needs the password in ${PASSWORD_ENV}")
    try:
        store = VerdictStore(
            args.name,
            prefix=args.prefix,
            endpoints=args.etcd,
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            user=args.user,
            password=password,
            timeout=args.timeout,
        )
    except (ValueError, OSError) as exc:  # OSError: a TLS file that cannot be read
        raise _UsageError(str(exc)) from None
    except ImportError as exc:
        print(f"hotreload verdict: {exc}", file=sys.stderr)
        return EXIT_INVALID
    by = f"operator:{getpass.getuser()}@{socket.gethostname()}"
    evidence = [{"kind": "operator", "name": "hotreload verdict", "error_message": args.reason}]
    try:
        stored = asyncio.run(store.write(args.hash, args.verdict, evidence, by=by))
    except VerdictError as exc:
        print(f"hotreload verdict: etcd: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        report = {
            "config_hash": stored.config_hash,
            "verdict": stored.verdict,
            "by": stored.by,
            "at": stored.at,
            "evidence": list(stored.evidence),
            "revision": stored.revision,
        }
        print(json.dumps(report))
    else:
        print(
            f"{stored.verdict}: {args.name} {stored.config_hash[:12]} by {stored.by} "
            f"at {stored.at} (revision {stored.revision})"
        )
    if stored.verdict != args.verdict:
        print(
            f"hotreload verdict: {stored.config_hash[:12]} already has the verdict "
            f"{stored.verdict!r}, given by {stored.by} at {stored.at}; the first verdict wins, "
            f"{args.verdict!r} was not written",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return EXIT_OK


class _Terminated(Exception):
    """SIGTERM arrived: stop as on Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 to 65535 (0: any free port)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotreload",
        description="Vet a config before it ships, watch one live, or try the demo.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands below"
    )

    check = sub.add_parser(
        "check",
        help="validate a config file (or layers: base, overlays, environment) and exit 0 or 1",
        description="Validate a config (several files: layers, merged in order): exit 0 if "
        "valid, 1 if not, 2 on a usage error.",
    )
    check.add_argument(
        "file",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="the config file; several are layers, merged in order (later wins)",
    )
    check.add_argument("--schema", required=True, help=_SCHEMA_HELP)
    check.add_argument(
        "--strict", action="store_true", help="keys the schema does not know make it invalid"
    )
    check.add_argument(
        "--env-prefix",
        metavar="PREFIX",
        help="add environment variables PREFIX_A__B=value on top (as a reloader with "
        "env_prefix= would)",
    )
    check.add_argument(
        "--explain",
        action="store_true",
        help="print the effective config, each value with its origin (file:line, $VARIABLE "
        "or (default)); secrets as ***",
    )
    check.add_argument(
        "--format",
        choices=("yaml", "json", "toml"),
        help="the files' format (default: by suffix; anything but .json and .toml is YAML)",
    )
    check.add_argument(
        "--max-bytes",
        type=int,
        default=1 << 20,
        metavar="N",
        help="refuse a file larger than N bytes (default: 1 MiB, as the reloader)",
    )
    check.add_argument(
        "--against",
        type=Path,
        metavar="OLD",
        help="also list the key paths that differ from OLD (restart-required flagged, "
        "secrets as ***)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(run=_check, parser=check)

    watch = sub.add_parser(
        "watch",
        help="reload a config live and print each outcome",
        description="Run a reloader on the config and print one line per outcome until Ctrl-C.",
    )
    watch.add_argument(
        "file", type=Path, nargs="+", metavar="FILE", help="the config file, or layers in order"
    )
    watch.add_argument("--schema", required=True, help=_SCHEMA_HELP)
    watch.add_argument(
        "--strict", action="store_true", help="refuse a version with keys the schema does not know"
    )
    watch.add_argument("--env-prefix", metavar="PREFIX", help="add PREFIX_A__B variables on top")
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    watch.set_defaults(run=_run_watch, parser=watch)

    demo = sub.add_parser(
        "demo",
        help="try it: edit a HolmesGPT API config and see it reload",
        description="Serve a HolmesGPT API config on 127.0.0.1 and reload it as you edit it.",
    )
    demo.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="where config.yaml lives (kept; default: a temp dir removed on exit)",
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=os.environ.get("HOTRELOAD_DEMO_PORT", "8000"),
        help="port on 127.0.0.1 (default $HOTRELOAD_DEMO_PORT or 8000; 0: any free port)",
    )
    demo.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate it makes, kept current by hotreload.tls",
    )
    demo.add_argument(
        "--rotate",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --tls: renew the certificate every SECONDS (as cert-manager would)",
    )
    demo.set_defaults(run=_run_demo, parser=demo)

    verdict = sub.add_parser(
        "verdict",
        help="give an operator's verdict on a config_hash, for the fleet (in etcd)",
        description="Write a verdict on a config_hash to the fleet's verdict store in etcd. "
        "The first verdict wins: exit 0 if written (or already the same), 1 if the hash "
        "already has the other verdict, 3 if etcd cannot be reached, 2 on a usage error.",
    )
    verdict.add_argument("hash", type=_config_hash, metavar="HASH", help="the config_hash")
    verdict.add_argument("verdict", choices=("good", "bad"), help="the verdict")
    verdict.add_argument(
        "--etcd",
        action="append",
        required=True,
        metavar="URL",
        help="an etcd endpoint, host:port or http(s)://host:port (repeat for several)",
    )
    verdict.add_argument("--name", required=True, help="the config name the fleet watches")
    verdict.add_argument(
        "--prefix", default="/hotreload", help="the fleet's etcd prefix (default: /hotreload)"
    )
    verdict.add_argument("--reason", default="", help="why: kept with the verdict as evidence")
    verdict.add_argument("--ca-file", help="TLS: the CA that signed etcd's certificate")
    verdict.add_argument("--cert-file", help="TLS: a client certificate")
    verdict.add_argument("--key-file", help="TLS: the client certificate's key")
    verdict.add_argument("--user", help=f"etcd auth user (password: ${PASSWORD_ENV})")
    verdict.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per request (default 5)"
    )
    verdict.add_argument("--json", action="store_true", help="print the verdict in force as JSON")
    verdict.set_defaults(run=_run_verdict, parser=verdict)
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
        args.parser.print_usage(sys.stderr)  # the subcommand's usage, not the top level's
        print(f"hotreload: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `hotreload check --explain | head`: the reader left; say nothing more, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
