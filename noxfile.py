"""Sessions: tests, plugins, lint, typing, docs, bench, demo. `python -m nox -s tests` is what CI runs."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PLUGINS = sorted(str(p.parent) for p in ROOT.glob("plugins/*/pyproject.toml"))


def install_everything(session: nox.Session, extras: str = "test") -> None:
    session.install("-e", f".[{extras}]", *[arg for p in PLUGINS for arg in ("-e", p)])


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: core and every plugin, on SQLite and PostgreSQL."""
    install_everything(session)
    session.run("pytest", "tests", *PLUGINS, *session.posargs)


@nox.session
def plugins(session: nox.Session) -> None:
    """Each plugin's own tests, including the conformance kit."""
    install_everything(session)
    session.run("pytest", *PLUGINS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, and the import layers ([tool.importlinter] in pyproject.toml: no upward import, no cycle)."""
    session.install("ruff", "import-linter>=2.17")
    session.run("ruff", "check", "src", "tests", "plugins", "benchmarks", "examples")
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "src")})  # reads the source; nothing is imported


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the core."""
    install_everything(session)
    session.install("mypy")
    session.run("mypy", "src/omnisdk")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the omnichannel store demo on the embedded SQLite default."""
    install_everything(session, extras="testing")
    session.run("omnisdk", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks with peers side by side; pass a script name to run one (`-- ingest`)."""
    install_everything(session)
    session.install("-r", "benchmarks/requirements.txt")
    names = session.posargs or [p.stem for p in sorted(ROOT.glob("benchmarks/*.py")) if not p.stem.startswith("_")]
    for name in names:
        session.run("python", f"benchmarks/{name}.py")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("mkdocs")
    session.run("mkdocs", "build", "--strict")
