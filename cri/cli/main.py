"""``pinnace``: the command line for people on a node, a client of pinnaced's socket.

Every command talks to pinnaced through its socket: the CRI for what the CRI covers, pinnace's
own Images and Events APIs for progress, push, import, untag and events. Tables for people,
``-o json|yaml`` for scripts, ``-o wide`` for tables with more columns.

Failures: one line on stderr naming the cause (:mod:`cri.cli.failures`) and exit code 1; a
usage error is argparse's (exit 2); Ctrl-C exits 130; a closed stdout (``| head -1``) ends the
command quietly with 141, the code a shell shows for a process that SIGPIPE ended. No failure
prints a traceback; ``PINNACE_DEBUG=1`` adds one for a pinnace bug.

Commands are registered from their modules' ``add_parsers`` (one line each in
:data:`COMMAND_MODULES`); each sets ``func(client, args) -> int``. Only the standard library is
imported at module level (and the pure :mod:`cri.cli.render`), so even an early Ctrl-C ends
without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from cri.cli.render import positive_seconds

#: Modules that add commands, in ``pinnace --help`` order. Each has ``add_parsers(sub)``.
COMMAND_MODULES = (
    "cri.cli.info",  # version, info
    "cri.cli.images",  # image ..., images
    "cri.cli.pods",  # pods, ps, inspect, logs, exec, stop, rm
    "cri.cli.stream",  # exec -i/-t (streaming), attach, port-forward
    "cri.cli.stats",  # stats, top
    "cri.cli.play",  # play
    "cri.cli.events",  # events
    "cri.cli.extensions",  # cdi ls, nri ls
    "cri.cli.doctor",  # doctor
)

DEFAULT_ADDRESS = "unix:///run/pinnace/pinnace.sock"
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinnace", description="talk to pinnaced")
    parser.add_argument(
        "--address",
        "-a",
        default=os.environ.get("PINNACE_ADDRESS", DEFAULT_ADDRESS),
        help=f"pinnaced's socket: a path or unix://PATH (env PINNACE_ADDRESS; default "
        f"{DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        help="seconds to wait for answers to quick calls",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_parsers(sub)
    return parser


def _fail(message: str) -> int:
    print(f"pinnace: {message}", file=sys.stderr)
    return EXIT_FAILURE


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush does
    not fail again (and print 'Exception ignored')."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _exit_now(code: int) -> None:
    """End the process with ``code`` after flushing what was printed, skipping the interpreter's
    finalization: after an interrupt gRPC's threads may still hold calls the interrupt
    abandoned, and nothing of ours needs finalizing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; every failure becomes one line and an exit code."""
    import grpc

    from cri.cli.client import Client
    from cri.cli.failures import describe
    from runtime.errors import PinnaceError

    try:
        client = Client(args.address, timeout=args.timeout)
    except PinnaceError as exc:
        return _fail(str(exc))
    interrupted = False
    try:
        return int(args.func(client, args))
    except grpc.RpcError as exc:
        return _fail(describe(exc, address=client.address).line)  # type: ignore[arg-type]
    except PinnaceError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # A Ctrl-C that landed inside a blocking call leaves that call's completion queue with
        # nobody to drain it, and grpc's Channel.close() then waits for it forever (seen: `logs
        # -f` hung in close after ^C). The process is ending: leave the channel to the kernel.
        if not interrupted:
            client.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the line ^C was echoed on
        if argv is None:  # the program itself, not a caller in this process
            _exit_now(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{':' if where else ''}{where}")
    except SystemExit:
        raise
    except Exception as exc:  # a pinnace bug: still one line, the traceback on request
        if os.environ.get("PINNACE_DEBUG"):
            import traceback

            traceback.print_exc()
        return _fail(f"internal error (a pinnace bug): {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
