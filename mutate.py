"""Mutation testing of the pure core, one module at a time (``nox -s mutate``; not in CI).

mutmut (pinned in the ``mutate`` session) mutates one module and runs, for each mutant, only
the tests that reached the mutated function. Each module gets its own scratch copy of the
project under ``.mutmut/<module>/`` whose ``[tool.mutmut]`` names that module and the tests
listed for it below, so a run never mutates (or runs tests for) more than it needs to: the
machine is shared. The score is killed / (total - equivalent); a mutant judged equivalent is
listed with its one-line reason in ``mutation-equivalents.md``, next to this file.

``python mutate.py [module ...] [--max-children N] [--report]``; with no module, all of them;
``--report`` scores the last runs again (after editing the equivalents) without running mutmut.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SCRATCH = ROOT / ".mutmut"
MUTMUT = [sys.executable, "-m", "mutmut"]
EQUIVALENTS = ROOT / "mutation-equivalents.md"

#: Module -> the tests that reach it (mutmut runs only those that hit a mutated function).
MODULES: dict[str, list[str]] = {
    "_parsing": [
        "tests/unit/test_parsing.py",
        "tests/unit/test_exact_edges.py",
        "tests/hardening/test_hostile_input.py",
        "tests/hardening/test_yaml_error_text.py",
    ],
    "_pipeline": [
        "tests/unit/test_pipeline.py",
        "tests/unit/test_dict_key_paths.py",
        "tests/unit/test_exact_edges.py",
        "tests/unit/test_refuse_and_origins.py",
        "tests/unit/test_unknown.py",
    ],
    "_fields": [
        "tests/unit/test_fields_and_diff.py",
        "tests/unit/test_pipeline.py",
        "tests/unit/test_exact_edges.py",
        "tests/unit/test_refuse_and_origins.py",
        "tests/unit/test_pydantic_schema.py",  # secret_type: SecretStr fields are secret
    ],
    "_diff": [
        "tests/unit/test_fields_and_diff.py",
        "tests/unit/test_pipeline.py",
        "tests/unit/test_exact_edges.py",
    ],
    "_failures": [
        "tests/unit/test_failure_ledger.py",
        "tests/unit/test_failure_actor.py",
        "tests/integration/test_auto_reload.py",  # FailureReporting: the reloader's own methods
    ],
    "_drain": [
        "tests/unit/test_drain.py",
    ],
    "_decide": [
        "tests/unit/test_decide.py",
        "tests/unit/test_drain.py",
    ],
}

#: Tests left out of a module's run: they hold a wall-clock bound that mutmut's instrumentation
#: (every call goes through a trampoline) breaks on a shared machine, whatever the mutant.
DESELECT: dict[str, list[str]] = {
    "_parsing": [
        "tests/hardening/test_hostile_input.py::test_hostile_input_is_refused_and_contained"
    ],
}

#: Reported on their own: the spec's targets differ (FailureActor >= 85 %, the rest >= 90 %).
_CLASS = re.compile(r"\.x[ǁ](?P<cls>[A-Za-z_]+)[ǁ]")
_STATUS = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")
_EQUIVALENT = re.compile(r"^- `(?P<name>[^`]+)`")


@dataclass
class Score:
    unit: str
    killed: int = 0
    total: int = 0
    equivalent: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        counted = self.total - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0


def equivalents() -> set[str]:
    if not EQUIVALENTS.exists():
        return set()
    lines = EQUIVALENTS.read_text("utf-8").splitlines()
    return {m.group("name") for line in lines if (m := _EQUIVALENT.match(line))}


def prepare(module: str) -> Path:
    """A scratch copy of the package, the tests and a pyproject that mutates ``module`` only."""
    work = SCRATCH / module
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "hotreload", work / "hotreload", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    tests = ", ".join(f'"{t}"' for t in MODULES[module] if (ROOT / t).exists())
    args = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    for test in DESELECT.get(module, []):
        args += ["--deselect", test]
    pytest_args = "[" + ", ".join(f'"{a}"' for a in args) + "]"
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["hotreload"]\n'
        f'only_mutate = ["hotreload/{module}.py"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        f"pytest_add_cli_args = {pytest_args}\n"
    )
    (work / "pyproject.toml").write_text(pyproject, "utf-8")
    return work


def run(module: str, max_children: int) -> list[tuple[str, str]]:
    work = prepare(module)
    log = work / "mutmut-run.log"
    with log.open("wb") as out:
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [*MUTMUT, "run", "--max-children", str(max_children)],
            cwd=work,
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        tail = log.read_text("utf-8", "replace").splitlines()[-30:]
        sys.exit(f"mutmut failed on {module} (exit {done.returncode}); {log}:\n" + "\n".join(tail))
    return results(module)


def results(module: str) -> list[tuple[str, str]]:
    """Every mutant of the module's last run, with its status."""
    work = SCRATCH / module
    if not (work / "mutants").is_dir():
        sys.exit(f"no mutmut run of {module} yet in {work}")
    listing = subprocess.run(  # noqa: S603 - as above
        [*MUTMUT, "results", "--all", "true"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [(m["name"], m["status"]) for line in listing.splitlines() if (m := _STATUS.match(line))]


def score(module: str, results: list[tuple[str, str]], known: set[str]) -> list[Score]:
    """One score for the module, plus one per class for `_failures` (ledger and actor)."""
    units: dict[str, Score] = {module: Score(module)}
    for name, status in results:
        found = _CLASS.search(name) if module == "_failures" else None
        keys = [module] + ([f"{module}.{found['cls']}"] if found else [])
        for key in keys:
            s = units.setdefault(key, Score(key))
            s.total += 1
            if status in {"killed", "timeout", "caught by type check"}:
                s.killed += 1
            elif name in known:
                s.equivalent += 1
            else:
                s.survivors.append(f"{name} ({status})")
    return list(units.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="module", help=", ".join(MODULES))
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--report", action="store_true", help="score the last runs again, without running mutmut"
    )
    args = parser.parse_args()
    unknown = set(args.modules) - MODULES.keys()
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}")
    known = equivalents()
    scores: list[Score] = []
    ran: dict[str, list[tuple[str, str]]] = {}
    for module in args.modules or list(MODULES):
        print(f"mutmut: {module} ...", flush=True)
        ran[module] = results(module) if args.report else run(module, args.max_children)
        scores += score(module, ran[module], known)
    print(f"\n{'module':<28} {'killed':>7} {'total':>6} {'equiv':>6} {'score':>7}")
    for s in scores:
        print(f"{s.unit:<28} {s.killed:>7} {s.total:>6} {s.equivalent:>6} {s.percent:>6.1f}%")
    seen = {name for module in ran for name, _ in ran[module]}
    surviving = {name for module in ran for name, status in ran[module] if status == "survived"}
    stale = sorted(
        n for n in known if n.split(".x", 1)[0].rsplit(".", 1)[-1] in ran and n not in surviving
    )
    if stale:
        print(f"\n{EQUIVALENTS.name}: {len(stale)} listed but not surviving (stale):")
        for name in stale:
            print(f"  {name}{'' if name in seen else ' (no such mutant)'}")
    survivors = [(s.unit, name) for s in scores if "." not in s.unit for name in s.survivors]
    print(f"\nsurvivors not listed in {EQUIVALENTS.name}: {len(survivors)}")
    for unit, name in survivors:
        print(f"  {unit}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
