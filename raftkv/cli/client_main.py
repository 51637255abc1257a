"""``raftkv-cli``: talk to a raftkv cluster from the shell.

Rules:
- Parse, call the blocking :class:`raftkv.client.Client`, print. No protocol logic here.
- Results go to stdout (``-w plain`` for people, ``-w json`` for programs); every error is ONE
  line on stderr, never a traceback, with an exit code from ``EXIT_CODES`` (listed in every
  command's --help).
- Keys and values on the command line are taken byte for byte (``os.fsencode``); VALUE ``-``
  reads stdin as bytes; ``get`` in plain mode writes the value's bytes exactly (plus a newline
  only when stdout is a terminal), so ``put k - < f`` and ``get k > f`` round-trip binary data.
- A "negative" answer (missing key, key not deleted, cas not swapped) prints nothing on stdout,
  says so on stderr and exits 1.
- Every option can also come from the environment: RAFTKV_ENDPOINTS, RAFTKV_TIMEOUT,
  RAFTKV_WRITE_OUT, RAFTKV_CACERT, RAFTKV_CERT, RAFTKV_KEY, RAFTKV_TOKEN_FILE, and
  RAFTKV_<COMMAND>_<OPTION> for command options.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from raftkv import __version__
from raftkv.cli.bench import bench
from raftkv.cli.client_security import (
    ClientSecurity,
    client_security_from_flags,
    client_security_options,
    describe_tls_hint,
)
from raftkv.client import Client, MemberList, NodeStatus
from raftkv.errors import (
    InvalidArgument,
    RaftKVError,
    Timeout,
    Unavailable,
)

log = logging.getLogger(__name__)

DEFAULT_ENDPOINTS = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

EXIT_OK = 0
EXIT_NEGATIVE = 1  # key not found, nothing deleted, compare-and-swap not swapped
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # nothing reachable, no leader, overloaded: NOT applied
EXIT_TIMEOUT = 4  # no answer in time: the outcome of a write is unknown
EXIT_INVALID = 5  # bad input: empty key, a size limit, ...
EXIT_ERROR = 6  # anything else: server error, refused precondition, local file error
EXIT_INTERRUPTED = 130

EXIT_CODES = """\b
Exit codes:
  0  success
  1  key not found / nothing deleted / compare-and-swap not swapped
  2  usage error
  3  unavailable: no node reachable, no leader, or overloaded (NOT applied)
  4  timeout: no answer in time (a write may or may not have been applied)
  5  invalid argument (empty key, key or value over its limit, ...)
  6  other error (server error, refused request, local file error)
"""


@dataclass(frozen=True, slots=True)
class _Settings:
    endpoints: str
    timeout: float
    write_out: str
    security: ClientSecurity = ClientSecurity()


class _Negative(Exception):
    """A well-formed "no": printed as one line, exit code 1."""


class _Cli(click.Group):
    """The group, with errors turned into one stderr line and a documented exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except BaseException as error:  # every failure: one line + a code
            _fail(error)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def _fail(error: BaseException) -> NoReturn:
    code, text = _describe_error(error)
    if text:
        click.echo(f"raftkv-cli: {text}", err=True)
    sys.exit(code)


def _describe_error(error: BaseException) -> tuple[int, str]:
    if isinstance(error, SystemExit):
        return (error.code if isinstance(error.code, int) else EXIT_ERROR), ""
    if isinstance(error, _Negative):
        return EXIT_NEGATIVE, _one_line(str(error))
    if isinstance(error, click.UsageError):
        hint = f" (try '{error.ctx.command_path} --help')" if error.ctx else ""
        return EXIT_USAGE, _one_line(error.format_message()) + hint
    if isinstance(error, click.ClickException):
        return error.exit_code, _one_line(error.format_message())
    if isinstance(error, click.exceptions.Exit):
        return error.exit_code, ""
    if isinstance(error, KeyboardInterrupt | click.Abort):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(error, Timeout):
        return EXIT_TIMEOUT, "timeout (outcome unknown): " + _one_line(error.message)
    if isinstance(error, Unavailable):
        hint = describe_tls_hint(error.message, _current_security())
        return EXIT_UNAVAILABLE, "unavailable: " + _one_line(error.message) + hint
    if isinstance(error, InvalidArgument):
        return EXIT_INVALID, "invalid argument: " + _one_line(error.message)
    if isinstance(error, RaftKVError):
        return EXIT_ERROR, f"{type(error).__name__}: {_one_line(error.message)}"
    if isinstance(error, OSError):
        return EXIT_ERROR, _one_line(str(error))
    log.debug("unexpected error", exc_info=error)
    return EXIT_ERROR, f"unexpected error: {type(error).__name__}: {_one_line(str(error))}"


def _current_security() -> ClientSecurity | None:
    ctx = click.get_current_context(silent=True)
    settings = ctx.find_object(_Settings) if ctx is not None else None
    return settings.security if settings is not None else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---- helpers ----


def _client(ctx: click.Context) -> Client:
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    if settings.timeout <= 0:
        raise click.BadParameter("must be positive", param_hint="--timeout")
    security = settings.security
    return ctx.with_resource(
        Client(
            settings.endpoints,
            timeout=settings.timeout,
            tls=security.tls,
            token=security.token,
        )
    )


def _json_mode(ctx: click.Context) -> bool:
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    return settings.write_out == "json"


def _arg_bytes(text: str) -> bytes:
    # fsencode gives back the exact bytes the shell passed, even when they are not UTF-8.
    return os.fsencode(text)


def _value_arg(text: str) -> bytes:
    if text == "-":
        return sys.stdin.buffer.read()
    return _arg_bytes(text)


def _bytes_field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` when ``data`` is UTF-8, else ``{name_base64: ...}``."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(data).decode("ascii")}


def _display(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def _emit_json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


def _emit_ok(ctx: click.Context, plain: str, payload: dict[str, Any]) -> None:
    if _json_mode(ctx):
        _emit_json(payload)
    else:
        click.echo(plain)


# ---- the commands ----


@click.group(
    cls=_Cli,
    context_settings={"auto_envvar_prefix": "RAFTKV", "help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
)
@click.option(
    "--endpoints",
    envvar="RAFTKV_ENDPOINTS",
    default=DEFAULT_ENDPOINTS,
    show_default=True,
    metavar="HOST:PORT,...",
    help="Nodes to talk to (any subset of the cluster).",
)
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Overall deadline of each request, retries included.",
)
@click.option(
    "-w",
    "--write-out",
    type=click.Choice(["plain", "json"]),
    default="plain",
    show_default=True,
    help="Output format.",
)
@client_security_options
@click.version_option(__version__, prog_name="raftkv-cli")
@click.pass_context
def main(
    ctx: click.Context, /, endpoints: str, timeout: float, write_out: str, **security: Any
) -> None:
    """Talk to a raftkv cluster."""
    ctx.obj = _Settings(
        endpoints=endpoints,
        timeout=timeout,
        write_out=write_out,
        security=client_security_from_flags(**security),
    )


@main.command(epilog=EXIT_CODES)
@click.argument("key")
@click.argument("value")
@click.pass_context
def put(ctx: click.Context, key: str, value: str) -> None:
    """Set KEY to VALUE (VALUE '-' reads it from stdin, byte for byte)."""
    data = _value_arg(value)
    _client(ctx).put(_arg_bytes(key), data)
    _emit_ok(ctx, "OK", {"ok": True})


@main.command(epilog=EXIT_CODES)
@click.argument("key")
@click.option("--stale", is_flag=True, help="Read the node's local state (may be out of date).")
@click.pass_context
def get(ctx: click.Context, key: str, stale: bool) -> None:
    """Print the value of KEY (nothing, and exit 1, if it does not exist)."""
    raw_key = _arg_bytes(key)
    value = _client(ctx).get(raw_key, stale=stale)
    if value is None:
        raise _Negative(f"key not found: {_display(raw_key)}")
    if _json_mode(ctx):
        _emit_json({**_bytes_field("key", raw_key), **_bytes_field("value", value)})
        return
    stdout = sys.stdout.buffer
    stdout.write(value)
    if sys.stdout.isatty():
        stdout.write(b"\n")
    stdout.flush()


@main.command(epilog=EXIT_CODES)
@click.argument("key")
@click.pass_context
def delete(ctx: click.Context, key: str) -> None:
    """Delete KEY (exit 1 if it did not exist)."""
    raw_key = _arg_bytes(key)
    if not _client(ctx).delete(raw_key):
        raise _Negative(f"key not found: {_display(raw_key)}")
    _emit_ok(ctx, "OK", {"deleted": True})


@main.command(epilog=EXIT_CODES)
@click.argument("key")
@click.argument("values", nargs=-1, required=True, metavar="[EXPECTED] NEW")
@click.option("--absent", is_flag=True, help="Swap only if KEY does not exist (no EXPECTED).")
@click.pass_context
def cas(ctx: click.Context, key: str, values: tuple[str, ...], absent: bool) -> None:
    """Set KEY to NEW if its value is EXPECTED (or, with --absent, if it does not exist).

    With --absent, give KEY NEW (or KEY '' NEW). NEW '-' reads the new value from stdin.
    """
    if absent and len(values) == 2 and values[0] == "":
        values = values[1:]  # an empty EXPECTED placeholder
    wanted = 1 if absent else 2
    if len(values) != wanted:
        form = "KEY NEW with --absent" if absent else "KEY EXPECTED NEW"
        raise click.UsageError(f"cas takes {form}", ctx)
    expected = None if absent else _arg_bytes(values[0])
    new = _value_arg(values[-1])
    if not _client(ctx).cas(_arg_bytes(key), expected, new):
        raise _Negative("compare-and-swap failed: the current value is not the expected one")
    _emit_ok(ctx, "OK", {"swapped": True})


@main.command(epilog=EXIT_CODES)
@click.argument("prefix", default="")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N pairs.")
@click.option("--stale", is_flag=True, help="Read the node's local state (may be out of date).")
@click.pass_context
def scan(ctx: click.Context, prefix: str, limit: int | None, stale: bool) -> None:
    """List keys with PREFIX (all keys by default) and their values, in key order.

    Plain output is one 'KEY<TAB>VALUE' line per pair (bytes that are not UTF-8 shown as \\x..
    escapes); json output is an array of {"key", "value"} objects.
    """
    pairs = _client(ctx).scan(_arg_bytes(prefix), limit=limit, stale=stale)
    if _json_mode(ctx):
        _emit_json_array({**_bytes_field("key", k), **_bytes_field("value", v)} for k, v in pairs)
        return
    for key, value in pairs:
        click.echo(f"{_display(key)}\t{_display(value)}")


def _emit_json_array(items: Iterable[dict[str, str]]) -> None:
    # Streamed item by item, so a long scan starts printing before its last page arrives.
    click.echo("[", nl=False)
    for n, item in enumerate(items):
        click.echo(("," if n else "") + "\n  " + json.dumps(item, ensure_ascii=False), nl=False)
    click.echo("\n]")


@main.command(epilog=EXIT_CODES)
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show every node: id, address, role, term, leader, commit, applied, lag.

    Nodes that do not answer are shown as down; exit 3 only if none answers. A follower the
    leader sends new entries only with heartbeats is shown as "follower (lazy)": it may trail
    by a heartbeat's writes while the others commit.
    """
    nodes = _client(ctx).status_all()
    if _json_mode(ctx):
        lazy = _lazy_followers(nodes)
        _emit_json([_status_json(node, _lag(node, nodes), lazy) for node in nodes])
    else:
        for line in _status_table(nodes):
            click.echo(line)
    if not any(node.up for node in nodes):
        raise Unavailable("no node answered")


def _lag(node: NodeStatus, nodes: list[NodeStatus]) -> int | None:
    """How many committed entries this node has yet to apply, against the best-known commit."""
    if not node.up:
        return None
    commit = max(n.commit_index for n in nodes if n.up)
    return max(0, commit - node.applied_index)


def _lazy_followers(nodes: list[NodeStatus]) -> set[int]:
    """Followers that a leader among ``nodes`` reports as lazy."""
    return {
        follower.id
        for node in nodes
        if node.up and node.role == "leader"
        for follower in node.followers
        if follower.lazy
    }


def _status_json(node: NodeStatus, lag: int | None, lazy: set[int]) -> dict[str, Any]:
    if not node.up:
        return {"id": node.id, "address": node.address, "up": False, "error": node.error}
    return {
        "id": node.id,
        "address": node.address,
        "up": True,
        "role": node.role,
        "term": node.term,
        "leader_id": node.leader_id,
        "leader_address": node.leader_address,
        "commit_index": node.commit_index,
        "applied_index": node.applied_index,
        "last_index": node.last_index,
        "lag": lag,
        "lazy": node.id in lazy,
        "cluster_id": node.cluster_id,
        "version": node.version,
    }


def _status_table(nodes: list[NodeStatus]) -> list[str]:
    header = ("ID", "ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG")
    rows = [header]
    lazy = _lazy_followers(nodes)
    for node in nodes:
        node_id = str(node.id) if node.id else "?"
        if not node.up:
            rows.append((node_id, node.address, "down", "-", "-", "-", "-", "-"))
            continue
        rows.append(
            (
                node_id,
                node.address,
                f"{node.role} (lazy)" if node.id in lazy else node.role,
                str(node.term),
                str(node.leader_id) if node.leader_id else "-",
                str(node.commit_index),
                str(node.applied_index),
                str(_lag(node, nodes)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


@main.group()
def leader() -> None:
    """Leadership commands."""


@leader.command(epilog=EXIT_CODES)
@click.argument("node_id", metavar="ID", type=click.IntRange(min=1))
@click.pass_context
def transfer(ctx: click.Context, node_id: int) -> None:
    """Make node ID the leader."""
    leader_id = _client(ctx).transfer_leader(node_id)
    _emit_ok(ctx, f"leader is now node {leader_id}", {"leader_id": leader_id})


@main.group()
def member() -> None:
    """Membership: list, add, promote and remove nodes (one change at a time)."""


def _emit_members(ctx: click.Context, members: MemberList, done: str = "") -> None:
    payload = {
        "members": [
            {"id": m.id, "address": m.address, "learner": m.learner} for m in members.members
        ],
        "leader_id": members.leader_id,
        "outgoing": list(members.outgoing),
        "cluster_id": members.cluster_id,
        "unreachable": list(members.unreachable),
    }
    lines = [done] if done else []
    for m in members.members:
        role = "learner" if m.learner else "voter"
        mark = "  (leader)" if m.id == members.leader_id else ""
        mark += "  (unreachable)" if m.id in members.unreachable else ""
        lines.append(f"{m.id}  {m.address or '?'}  {role}{mark}")
    if members.outgoing:
        lines.append(f"joint: outgoing voters {list(members.outgoing)}")
    _emit_ok(ctx, "\n".join(lines), payload)


@member.command(name="list", epilog=EXIT_CODES)
@click.pass_context
def member_list(ctx: click.Context) -> None:
    """List the members: ID, address, voter or learner, and the leader."""
    _emit_members(ctx, _client(ctx).member_list())


@member.command(name="add", epilog=EXIT_CODES)
@click.argument("node_id", metavar="ID", type=click.IntRange(min=1))
@click.argument("address", metavar="ADDR")
@click.option("--learner", is_flag=True, help="Join as a non-voting learner (promote it later).")
@click.pass_context
def member_add(ctx: click.Context, node_id: int, address: str, learner: bool) -> None:
    """Add node ID serving at ADDR (HOST:PORT); start it with an empty data directory."""
    members = _client(ctx).member_add(node_id, address, learner=learner)
    _emit_members(ctx, members, f"added node {node_id} ({'learner' if learner else 'voter'})")


@member.command(name="promote", epilog=EXIT_CODES)
@click.argument("node_id", metavar="ID", type=click.IntRange(min=1))
@click.pass_context
def member_promote(ctx: click.Context, node_id: int) -> None:
    """Make learner ID a voter."""
    _emit_members(ctx, _client(ctx).member_promote(node_id), f"promoted node {node_id}")


@member.command(name="remove", epilog=EXIT_CODES)
@click.argument("node_id", metavar="ID", type=click.IntRange(min=1))
@click.pass_context
def member_remove(ctx: click.Context, node_id: int) -> None:
    """Remove node ID from the cluster (then stop it and wipe its data directory)."""
    _emit_members(ctx, _client(ctx).member_remove(node_id), f"removed node {node_id}")


@main.group()
def snapshot() -> None:
    """Backups of the replicated state."""


@snapshot.command(epilog=EXIT_CODES)
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Deadline of the whole transfer (a backup takes as long as the data needs).",
)
@click.pass_context
def save(ctx: click.Context, file: str, deadline: float) -> None:
    """Stream a point-in-time backup of the state to FILE (written atomically)."""
    info = _client(ctx).snapshot_save(file, timeout=deadline)
    _emit_ok(
        ctx,
        f"saved snapshot at index {info.index} (term {info.term}, {info.size_bytes} bytes) "
        f"to {info.path}",
        {
            "path": info.path,
            "index": info.index,
            "term": info.term,
            "size_bytes": info.size_bytes,
            "cluster_id": info.cluster_id,
        },
    )


main.add_command(bench)
