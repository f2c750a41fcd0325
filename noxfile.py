"""Developer sessions: ``nox -s tests lint typecheck`` (what CI runs) and ``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (unit, integration), as the README runs it."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark with its baselines (the ``bench`` extra); ``-- --quick`` for < 60 s."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def explore(session: nox.Session) -> None:
    """The hypothesis state machine, long (>= 10,000 steps, fresh seeds): not part of CI."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/property",
        "-p",
        "no:randomly",
        "-s",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "explore"},
    )
