"""Developer sessions: ``nox`` runs lint, typecheck and the tests on every supported Python
(a missing interpreter is skipped, or an error where ``CI`` is set) and builds the docs site;
``nox -s coverage``, ``nox -s bench`` and ``nox -s mutate`` on demand."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True

#: Every Python that pyproject's ``requires-python`` admits and that is still supported.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, as the README runs it, on each supported Python."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """Line and branch coverage of the package over the whole suite, the Python programs it
    starts (CLI, README snippets, demo workers) included; settings in pyproject."""
    session.install("-e", ".[test,coverage]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", "-n0", *session.posargs)  # one process
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


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
def docs(session: nox.Session) -> None:
    """The documentation site from docs/ (mkdocs-material), into site/; any warning fails it.
    ``nox -s docs -- serve`` previews it instead."""
    session.install("-e", ".[docs]")
    env = {"NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not a warning
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:], env=env)
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs, env=env)


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
        "-n0",  # one process, in order: the step count is read after the machine ran
        "-p",
        "no:randomly",
        "-s",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "explore"},
    )


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing of the pure core, per module (mutate.py): not part of CI.

    ``nox -s mutate -- _parsing _drain`` runs only those modules.
    """
    session.install("-e", ".[test]", "mutmut==3.8.1")
    session.run("python", "mutate.py", *session.posargs)
