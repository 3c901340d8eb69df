"""`omnisdk worker` and `omnisdk journeys …`: run workers, inspect and repair journey runs, draw graphs.

Journeys are code: `--import myapp.journeys` imports the modules that define them (with
`@journey` or `omnisdk.journeys.from_dict`), `--file journey.yaml` loads declarative ones.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from .._errors import NotFoundError
from .._omni import Omni
from ..journeys import Journey, catalogue, from_yaml
from ._command import Subparsers

__all__ = ["add_parser"]


def _sources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a module that defines journeys (repeatable)")
    parser.add_argument("--file", dest="files", action="append", default=[], metavar="PATH",
                        help="load a declarative journey from YAML or JSON (repeatable)")


def _journeys(args: argparse.Namespace) -> list[Journey]:
    sys.path.insert(0, ".")
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise NotFoundError(f"--import {module}: {exc}") from None
    for path in args.files:
        from_yaml(path)
    return [j for versions in catalogue.values() for j in versions.values()]


def _client(args: argparse.Namespace) -> Omni:
    omni = Omni(args.store, config=args.config)
    omni.register(*_journeys(args))
    return omni


def add_parser(sub: Subparsers) -> None:
    worker = sub.add_parser("worker", help="run journeys and deliveries until SIGTERM")
    _sources(worker)
    worker.add_argument("--poll-interval", type=float, help="seconds between polls when idle")
    worker.set_defaults(func=run_worker)

    parser = sub.add_parser("journeys", help="journey runs and diagrams")
    commands = parser.add_subparsers(dest="journeys_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="journeys and versions the imports define")
    _sources(listing)
    listing.set_defaults(func=list_journeys)
    graph = commands.add_parser("graph", help="print a Mermaid diagram of a declarative journey")
    graph.add_argument("journey_id")
    graph.add_argument("--version", help="default: the last one defined")
    _sources(graph)
    graph.set_defaults(func=draw)
    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--journey")
    runs.add_argument("--customer")
    runs.add_argument("--status", action="append")
    runs.add_argument("--limit", type=int, default=50)
    runs.set_defaults(func=list_runs, imports=[], files=[])
    cancel = commands.add_parser("cancel", help="cancel an active run (and what it queued)")
    cancel.add_argument("run_id")
    cancel.set_defaults(func=lambda a: _admin(a, "cancel"), imports=[], files=[])
    for name, text in (("retry", "resume a failed run"), ("migrate", "move a run to another version")):
        action = commands.add_parser(name, help=text)
        action.add_argument("run_id")
        action.add_argument("--to", dest="version", required=(name == "migrate"), help="version to run it on")
        _sources(action)
        action.set_defaults(func=lambda a, name=name: _admin(a, name))


def run_worker(args: argparse.Namespace) -> int:
    with _client(args) as omni:
        # The process is ours: what startup built (modules, journeys, templates) lives as long as it
        # does, so keep it out of the collector's scans (the dispatch hot path allocates a lot).
        gc.freeze()
        omni.run_worker(poll_interval=args.poll_interval)
    return 0


def list_journeys(args: argparse.Namespace) -> int:
    for journey in _journeys(args):
        kind = "declarative" if journey.graph is not None else "code"
        print(f"{journey.id}\t{journey.version}\t{kind}\ttrigger: {', '.join(journey.trigger)}")
    return 0


def draw(args: argparse.Namespace) -> int:
    _journeys(args)
    versions = catalogue.get(args.journey_id)
    if not versions:
        raise NotFoundError(f"no journey {args.journey_id!r} (import its module with --import or give --file)")
    journey = versions[args.version] if args.version in versions else list(versions.values())[-1]
    print(journey.mermaid(), end="")
    return 0


def list_runs(args: argparse.Namespace) -> int:
    with Omni(args.store, config=args.config) as omni:
        runs = omni.runs(journey=args.journey, customer_id=args.customer, status=args.status, limit=args.limit)
    print("run\tjourney\tversion\tcustomer\tstatus\tstep\tdue\treason")
    for r in runs:
        due = r.due_at.isoformat() if r.due_at else ""
        print(f"{r.id}\t{r.journey}\t{r.version}\t{r.customer_id}\t{r.status}\t{r.step or ''}\t{due}\t{r.reason or ''}")
    return 0


def _admin(args: argparse.Namespace, action: str) -> int:
    with _client(args) as omni:
        if action == "cancel":
            run = omni.cancel_run(args.run_id)
        elif action == "retry":
            run = omni.retry_run(args.run_id) if not args.version else omni.migrate_run(args.run_id, args.version)
        else:
            run = omni.migrate_run(args.run_id, args.version)
    print(f"{run.id}\t{run.journey}\t{run.version}\t{run.status}")
    return 0
