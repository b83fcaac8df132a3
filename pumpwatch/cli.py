"""The `pumpwatch` command: read a deployment (check-site, registers, thresholds), run the roles, add users.

`--site` (or `PUMPWATCH_SITE`) is a site file (one estate), a folder of site files or a deployment file
(`pumpwatch.portfolio`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from pumpwatch.logs import configure_logging
from pumpwatch.portfolio import Portfolio, as_portfolio, load_portfolio
from pumpwatch.portfolio import summary as deployment_summary
from pumpwatch.settings import Settings
from pumpwatch.site import Site
from pumpwatch.sitefile import SiteFileError
from pumpwatch.sitereport import per_estate, register_table, summary, threshold_table

EXIT_USAGE = 2  # the user's input is wrong (bad site file, bad arguments)
EXIT_FAILURE = 1  # the environment is wrong (port in use, broker unreachable)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    settings = Settings()
    parser = _parser(settings)
    args = parser.parse_args(argv)
    configure_logging(str(args.log_level), settings.log_format)
    if args.command == "check-site":
        return _check_site(args.file)
    if args.command == "add-user":
        from maintenance.accounts import run

        return run(settings, args.username, args.role, args.display_name)
    if args.command == "registers":
        site = _load_or_report(args.site)
        if site is None:
            return EXIT_USAGE
        print(per_estate(site, register_table))
        return 0
    if args.command == "thresholds":
        site = _load_or_report(args.site)
        if site is None:
            return EXIT_USAGE
        print(per_estate(site, threshold_table))
        return 0
    if args.command == "broker-acl":
        return _broker_acl(args, settings)
    if args.command == "demo" and settings.environment == "production":
        from pumpwatch.production import DEMO_REFUSED

        print(f"pumpwatch demo: {DEMO_REFUSED}", file=sys.stderr)  # before it opens anything
        return EXIT_FAILURE
    if getattr(args, "estates", None) is not None:  # a generated fleet (simulate, demo)
        args.site = _write_fleet(args, settings)
        if args.site is None:
            return EXIT_USAGE
    site = _load_or_report(args.site)
    if site is None:
        return EXIT_USAGE
    from sqlalchemy.exc import SQLAlchemyError

    from maintenance.estates import UnassignedRecords
    from pumpwatch.signing import SigningError
    from pumpwatch.stack import StackOptions, migrate_state, run_stack
    from simulators.scenarios import ScenarioError

    if args.mqtt:
        settings.mqtt.url = args.mqtt
    settings.mqtt.embedded_port = args.mqtt_port
    simulate = args.command in ("simulate", "demo")
    if getattr(args, "port", None) is not None:
        settings.api.port = args.port
    if getattr(args, "metrics_port", None) is not None:
        settings.metrics.port = args.metrics_port
    if args.command == "edge":
        problem = _edge_settings(args, settings, site)
        if problem is not None:
            print(f"pumpwatch edge: {problem}", file=sys.stderr)
            return EXIT_USAGE
    else:
        settings.edge.id = None  # only `pumpwatch edge` acts as an edge
    if settings.environment == "production":  # checked before anything opens a port or a file
        from pumpwatch.production import refusal_text, role_problems

        problems = role_problems(settings, args.command, site)
        if problems:
            print(f"pumpwatch {args.command}: {refusal_text(problems)}", file=sys.stderr)
            return EXIT_FAILURE
    options = StackOptions(
        simulate=simulate,
        collect=args.command not in ("simulate", "serve", "schedule"),
        serve=args.command in ("serve", "up", "demo"),
        schedule=args.command in ("schedule", "up", "demo"),
        speed=args.speed if simulate else 1.0,
        seed=args.seed if simulate else 1,
        scenarios=tuple(args.scenario) if simulate else (),
        modbus_port_base=args.modbus_port_base if simulate else None,
        status_every=args.status_every,
        demo=args.command == "demo",
        edge=args.command == "edge",
    )
    if args.command == "simulate" and (len(site) > 1 or args.estates is not None):
        # a fleet: each estate fed as its file says (edge batches, Modbus TCP, MQTT)
        from pumpwatch.stack import run_fleet_stack

        try:
            fleet = run_fleet_stack(site, settings, options, processes=args.processes,
                                    edge_keys=args.edge_keys, faults_per_day=args.faults_per_day)
            return asyncio.run(_until_signal(fleet))
        except (OSError, RuntimeError) as err:
            print(f"pumpwatch: cannot start: {err}", file=sys.stderr)
            return EXIT_FAILURE
    try:
        if options.serve or options.schedule:
            migrate_state(settings, site)
        if options.serve and settings.environment == "production":
            problems = _demo_logins(settings)
            if problems:
                from pumpwatch.production import refusal_text

                print(f"pumpwatch {args.command}: {refusal_text(problems)}", file=sys.stderr)
                return EXIT_FAILURE
        return asyncio.run(_until_signal(run_stack(site, settings, options)))
    except (ScenarioError, SigningError, UnassignedRecords) as err:
        print(f"pumpwatch: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, RuntimeError) as err:
        print(f"pumpwatch: cannot start: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except SQLAlchemyError as err:
        print(f"pumpwatch: cannot start: state database: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except ExceptionGroup as group:  # a service failed inside the task group
        environment, other = group.split((OSError, RuntimeError))
        if other is not None or environment is None:
            raise
        print(f"pumpwatch: stopped: {_first_leaf(environment)}", file=sys.stderr)
        return EXIT_FAILURE


def _demo_logins(settings: Settings) -> list[str]:
    """Demo logins that still hold their published passwords (the state database already migrated)."""
    from api.production import demo_login_problems
    from maintenance.auth import AuthService
    from maintenance.db import session_factory, state_engine
    from pumpwatch.clock import SystemClock

    engine = state_engine(settings)
    try:
        return demo_login_problems(AuthService(session_factory(engine), SystemClock()))
    finally:
        engine.dispose()


def _broker_acl(args: argparse.Namespace, settings: Settings) -> int:
    """`pumpwatch broker-acl`: the broker's ACL and identities from the site file(s)."""
    from pumpwatch.broker_acl import Roles, run_command

    paths: list[Path] = args.site or [settings.site]
    deployments = [_load_or_report(path) for path in paths]
    if any(found is None for found in deployments):
        return EXIT_USAGE
    sites = [site for found in deployments if found is not None for site in found]
    roles = Roles(collectors=tuple(args.collector or ["pumpwatch-collector"]),
                  apis=tuple(args.api or ["pumpwatch-api"]),
                  schedulers=tuple(args.scheduler or ["pumpwatch-scheduler"]),
                  simulator=args.simulator, monitor=args.monitor)
    given = {"collector": args.collector or [], "api": args.api or [], "scheduler": args.scheduler or [],
             "simulator": [args.simulator] if args.simulator else [],
             "monitor": [args.monitor] if args.monitor else [], "edge": [args.edge] if args.edge else []}
    return run_command(paths, sites, roles, given, edge=args.edge, out=args.out, passwords=args.passwords)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _until_signal(work: Coroutine[Any, Any, int]) -> int:
    """Run `work` until it ends or SIGINT/SIGTERM arrives; a signal is a clean exit."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pumpwatch", description=__doc__)
    parser.add_argument("--log-level", default=settings.log_level)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-site", help="validate a site file, a folder of them or a deployment file")
    check.add_argument("file", type=Path)
    account = sub.add_parser("add-user", help="create a login in the state database "
                             "(password from standard input, or asked twice)")
    account.add_argument("username")
    account.add_argument("--role", action="append", required=True,
                         choices=("operator", "technician", "supervisor", "director", "admin"),
                         help="a role of the user (repeatable)")
    account.add_argument("--display-name", default=None, help="the name colleagues see")
    registers = sub.add_parser("registers", help="print the Modbus register map of every estate")
    registers.add_argument("--site", type=Path, default=settings.site)
    thresholds = sub.add_parser("thresholds", help="print the alarm thresholds in force on every sensor and "
                                                   "where each comes from")
    thresholds.add_argument("--site", type=Path, default=settings.site)
    acl = sub.add_parser("broker-acl", help="the broker's identities and topic rules (a Mosquitto acl_file) "
                                            "from the site file(s)")
    acl.add_argument("--site", type=Path, action="append", default=None, metavar="FILE",
                     help=f"site file (repeatable: one broker for several sites; default {settings.site})")
    acl.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write acl, identities.md (and passwd) there; default: print the ACL")
    acl.add_argument("--passwords", type=Path, default=None, metavar="FILE",
                     help="name:password lines: write Mosquitto's password file (hashed) into --out")
    for option, role in (("--collector", "collector"), ("--api", "API replica"),
                         ("--scheduler", "scheduler")):
        acl.add_argument(option, action="append", default=None, metavar="NAME",
                         help=f"the login of a {role} process (repeatable; default pumpwatch-{option[2:]})")
    acl.add_argument("--simulator", default=None, metavar="NAME",
                     help="the simulators' login (none by default)")
    acl.add_argument("--monitor", default=None, metavar="NAME",
                     help="a login that may read the broker's uptime, for health checks")
    acl.add_argument("--edge", default=None, metavar="ID",
                     help="the ACL of this edge box's own broker (its room's devices), not the centre's")
    commands = (("simulate", "run the pump-room simulators alone"),
                ("demo", "simulators and every service on embedded defaults"),
                ("collect", "the collector alone: Modbus and MQTT into the series store"),
                ("edge", "the collector on a pump room's edge box, forwarding to the centre's broker"),
                ("serve", "the API and web UI alone (alarm events from the broker)"),
                ("schedule", "the inspection scheduler alone: plans into tasks, duty rotation"),
                ("up", "every service (no simulators), against the configured broker and stores"))
    for name, text in commands:
        p = sub.add_parser(name, help=text)
        p.add_argument("--site", type=Path, default=settings.site,
                       help="site file (YAML), folder of site files, or deployment file")
        p.add_argument("--mqtt", default=settings.mqtt.url, metavar="URL",
                       help="broker URL; default: an in-process broker")
        p.add_argument("--mqtt-port", type=int, default=settings.mqtt.embedded_port,
                       help="port of the in-process broker")
        p.add_argument("--status-every", type=_positive, default=10.0, metavar="SECONDS",
                       help="print a status line per room this often")
        if name in ("serve", "up", "demo"):
            p.add_argument("--port", type=int, default=None, help="API port (default 8000)")
        if name in ("collect", "edge"):
            p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                           help=f"port of /metrics and /healthz (default {settings.metrics.port}; 0: free)")
        if name == "edge":
            p.add_argument("--edge-id", default=settings.edge.id, metavar="ID",
                           help="this box's id in the site's edges: (PUMPWATCH_EDGE__ID)")
            p.add_argument("--uplink", default=None, metavar="URL",
                           help="the centre's broker with this edge's login, mqtts://user:password@host:8883 "
                           "(PUMPWATCH_EDGE__UPLINK_URL)")
        if name in ("simulate", "demo"):
            p.add_argument("--speed", type=_positive, default=settings.simulator.speed,
                           help="simulated seconds per real second")
            p.add_argument("--seed", type=int, default=settings.simulator.seed)
            p.add_argument("--scenario", action="append", default=[], metavar="NAME[:TARGET]",
                           help="switch a fault scenario on at start (repeatable)")
            p.add_argument("--modbus-port-base", type=int, default=None, metavar="PORT",
                           help="serve device i on PORT+i instead of the site's ports (0: free ports)")
            p.add_argument("--estates", type=_count, default=None, metavar="N",
                           help="generate a fleet of N estates (simulators/fleet.py) and run it, not --site"
                           + ("" if name == "simulate" else f" (seed {DEMO_FLEET_SEED}, in the state dir)"))
        if name == "simulate":
            p.add_argument("--out", type=Path, default=None, metavar="DIR",
                           help="where --estates writes its site files and deployment.yaml "
                           "(default: <state dir>/fleet)")
            p.add_argument("--feed", choices=("edge", "modbus", "mqtt", "mixed"), default="edge",
                           help="how --estates' estates reach the centre (default: edge batches)")
            p.add_argument("--processes", type=_count, default=1, metavar="K",
                           help="simulate a fleet in K worker processes")
            p.add_argument("--faults-per-day", type=float, default=0.0, metavar="X",
                           help="a fleet's estates each have X faults a simulated day on average "
                           "(seeded; default none)")
            p.add_argument("--edge-keys", type=Path, default=settings.signing.trusted_dir, metavar="DIR",
                           help="sign each edge's batches with DIR/<edge>.key where there is one "
                           "(default: PUMPWATCH_SIGNING__TRUSTED_DIR)")
    return parser


DEMO_FLEET_SEED = 2026  # `pumpwatch demo --estates N` shows the same estates every time
DEMO_FLEET_DIR = "demo-estates"


def _write_fleet(args: argparse.Namespace, settings: Settings) -> Path | None:
    """Generate the fleet --estates asks for; its deployment file, or None after saying what is wrong."""
    from simulators.fleet import DEFAULT_MODBUS_PORT_BASE, write_fleet

    # Two rooms an estate, a domestic and a fire room: the load target's shape (200 estates x 2 rooms), and
    # the rooms the demo's seeded work is written for. (A one-room estate's combined room shares one
    # pressure in the model, so its domestic header reads the fire main's pressure and alarms high.)
    rooms = (2, 2)
    if args.command == "demo":  # on the embedded defaults: Modbus TCP PLCs the demo's collector polls
        directory, seed, feed = settings.collector.state_dir / DEMO_FLEET_DIR, DEMO_FLEET_SEED, "modbus"
    else:
        directory, seed, feed = args.out or settings.collector.state_dir / "fleet", args.seed, args.feed
    try:
        base = args.modbus_port_base or DEFAULT_MODBUS_PORT_BASE  # the Modbus feed's PLCs: base + room number
        deployment = write_fleet(directory, args.estates, seed, feed=feed, rooms=rooms, modbus_port_base=base)
    except (ValueError, OSError) as err:
        print(f"pumpwatch {args.command}: --estates: {err}", file=sys.stderr)
        return None
    print(f"Fleet of {args.estates} estates (seed {seed}, feed {feed}): {deployment}", flush=True)
    return deployment


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _edge_settings(args: argparse.Namespace, settings: Settings, site: Site | Portfolio) -> str | None:
    """Take the edge's options into the settings; what is wrong with them, or None."""
    from pydantic import SecretStr

    from pumpwatch.mqtturl import BrokerAddress

    settings.edge.id = args.edge_id
    if args.uplink:
        settings.edge.uplink_url = SecretStr(args.uplink)
    if settings.edge.id is None:
        return "which edge is this box? set --edge-id or PUMPWATCH_EDGE__ID"
    known = list(as_portfolio(site).edge_estates())
    if settings.edge.id not in known:
        return (f"the site has no edge {settings.edge.id!r} (edges: {', '.join(known) or 'none'}); "
                "add it to the site file's edges:")
    if settings.edge.uplink is None:
        return "where is the centre? set --uplink or PUMPWATCH_EDGE__UPLINK_URL (mqtts://user:password@host:8883)"
    try:
        uplink = BrokerAddress.parse(settings.edge.uplink)
    except ValueError as err:
        return f"uplink: {err}"
    if uplink.port <= 0:
        return f"uplink: bad port {uplink.port}"
    return None  # production's rules for the uplink (mqtts://, its own login): pumpwatch.production


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _load_or_report(path: Path) -> Portfolio | None:
    """The deployment at `path`, or None after printing every problem (file:line: field: message)."""
    try:
        return load_portfolio(path)
    except SiteFileError as err:
        for issue in err.issues:
            print(issue, file=sys.stderr)
        return None


def _check_site(path: Path) -> int:
    found = _load_or_report(path)
    if found is None:
        return EXIT_USAGE
    if len(found) == 1 and not path.is_dir():
        print(f"{path}: OK: {summary(found.first)}")
    else:
        print(f"{path}: OK: {deployment_summary(found)}")
        for estate, site in found.estates.items():
            print(f"  {found.files.get(estate, estate)}: {summary(site)}")
    return 0
