"""The options several commands share, each defined once, and how every option value is read.

A command adds its own options beside these groups (`source`, `interval`, `output`).
Every numeric value is read by `number`, so that none passes on a number that what
takes it cannot hold, whichever the option.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import re
from collections.abc import Callable, Sequence
from typing import Final

from .._config import check_batch_id
from ._common import EXIT_CODES, Commands
from ._output import FORMATS, SOURCE
from ._terminal import for_terminal
from ._view import VIEWS, field_names

DEMO_INTERVAL: Final = 1.0
"""The default --interval with --demo: a poll every second."""
INTERVAL: Final = 15.0
"""The default --interval against a real API, as the library's."""
LISTEN_INTERVAL: Final = 600.0
"""The default --interval of a watch that webhooks wake (`--listen`): its polls only
reconcile what a lost webhook missed."""
MAX_PORT: Final = 65_535
_QUOTED: Final = 40
"""Characters of a bad option value that its usage error quotes."""
_STATUS_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,39}")
"""What a status the API may add later looks like: both providers spell theirs so."""


def command(
    commands: Commands, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """A command's parser, its help ending with the exit codes, as every command's does."""
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_source(
    parser: argparse.ArgumentParser, title: str, demo: str, *, projects: str | None = None
) -> None:
    """The options that say which API to talk to, and as whom; `projects` is what several
    `--project`s do, for the command that takes several (one project for the others)."""
    source = parser.add_argument_group(title)
    source.add_argument("--demo", action="store_true", help=f"{demo} (no API key needed)")
    source.add_argument(
        "--provider",
        choices=tuple(VIEWS),
        default="openai",
        help="whose batches: OpenAI's (default) or Anthropic's Message Batches",
    )
    source.add_argument(
        "--base-url",
        help="API base URL (default: $OPENAI_BASE_URL or OpenAI's; with --provider"
        " anthropic, $ANTHROPIC_BASE_URL or Anthropic's)",
    )
    source.add_argument(
        "--api-key",
        help="API key (default: $OPENAI_API_KEY; with --provider anthropic,"
        " $ANTHROPIC_API_KEY); never printed",
    )
    per_project = f"; repeat it to {projects}" if projects else ""
    source.add_argument(
        "--project",
        action="append",
        type=project_id,
        metavar="PROJECT",
        help=f"OpenAI project id, sent as OpenAI-Project{per_project}; its key is"
        f" --api-key if given, else ${KEY_VARIABLE}_<PROJECT> (the id upper-cased, every"
        f" other character than a letter or digit as _) if set, else ${KEY_VARIABLE}",
    )
    source.add_argument(
        "--proxy",
        help="proxy URL (default: $HTTPS_PROXY or $HTTP_PROXY, minus $NO_PROXY; not for --demo)",
    )


KEY_VARIABLE: Final = "OPENAI_API_KEY"
"""The shared OpenAI key's variable, and the prefix of each project's own."""


def check_source(args: argparse.Namespace, *, projects: bool = False) -> str | None:
    """The usage error of the source options, if any: a project is OpenAI's, and only the
    command that merges (`projects`) takes several."""
    chosen = args.project or []
    if chosen and args.provider != "openai":
        return "--project is OpenAI's: Anthropic keys belong to one workspace; drop --project"
    if len(chosen) > 1 and not projects:
        return "several --project merge only in `aiobatches list`; give one"
    if len(set(chosen)) < len(chosen):
        return "a --project is given twice; give each once"
    return _check_statuses(args) or _check_fields(args)


def _check_statuses(args: argparse.Namespace) -> str | None:
    """A `--status` of the provider's; or one it may add later, spelled as its are, and
    not the other provider's (which would match nothing and print nothing)."""
    view = VIEWS[args.provider]
    others = {status for other in VIEWS.values() for status in other.statuses}
    for status in getattr(args, "status", None) or ():
        if status in view.statuses:
            continue
        if status in others or not _STATUS_NAME.fullmatch(status):
            return (
                f"--status: {args.provider}'s statuses are {', '.join(view.statuses)};"
                f" got {for_terminal(repr(quoted_text(status)))}"
            )
    return None


def _check_fields(args: argparse.Namespace) -> str | None:
    """`--fields` of the provider's batches, and `source` only where several projects
    merge: a column no batch has would be blank in every row."""
    chosen = getattr(args, "fields", None) or ()
    merging = len(args.project or ()) > 1
    if SOURCE in chosen and not merging:
        return "--fields: source names the project of a merge; it takes two or more --project"
    names = VIEWS[args.provider].names()
    foreign = [name for name in chosen if name != SOURCE and name not in names]
    if foreign:
        offered = sorted({*names, *([SOURCE] if merging else [])})
        return (
            f"--fields: {args.provider}'s batches have no {', '.join(foreign)};"
            f" choose from {', '.join(offered)}"
        )
    return None


def add_interval(group: argparse._ActionsContainer) -> None:
    """`--interval`, the seconds between polls of the commands that poll."""
    group.add_argument(
        "--interval",
        type=seconds(zero=True),
        metavar="S",
        help=f"seconds between polls (default {INTERVAL:g}; {DEMO_INTERVAL:g} with --demo;"
        f" {LISTEN_INTERVAL:g} with --listen); the server may ask for longer",
    )


def interval(args: argparse.Namespace) -> float:
    """The --interval given, or its default for where the command runs and whether
    webhooks wake it."""
    if args.interval is not None:
        return float(args.interval)
    if getattr(args, "listen", None) is not None:
        return LISTEN_INTERVAL
    return DEMO_INTERVAL if args.demo else INTERVAL


def add_output(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    """`--format` (of `formats`) and, when the formats have columns, `--fields`."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "--format",
        choices=formats,
        help="output format (default: table on a terminal, jsonl when piped)",
    )
    if "csv" in formats:
        output.add_argument(
            "--fields",
            type=fields,
            help=f"comma-separated columns for table and csv; one of: {', '.join(field_names())}",
        )


def number(
    raw: str, *, low: int | None = None, high: int | None = None, unit: str = ""
) -> int | float | None:
    """The number `raw` spells, from `low` (and up to `high`) when given: an exact int when
    it is whole, else a float; None when it spells no number at all.

    inf, nan, 1e309 or a whole number of 309 digits is a usage error (`unit`, say
    " of seconds", completes its message), whichever the option.
    """
    try:
        approximate = float(raw)  # reads digits of any length, where int() stops at 4,300
    except ValueError:
        return None
    value: int | float = approximate
    if math.isfinite(approximate):
        with contextlib.suppress(ValueError):  # 1.5, 1e3
            value = int(raw)  # exact, however large: it fits a float, so it has 309 digits at most
    if (low is not None and value < low) or (high is not None and value > high):  # nan: neither
        if high is None:
            limits = f"{low} or more"
        else:
            limits = f"{high} or less" if low is None else f"from {low} to {high}"
        raise argparse.ArgumentTypeError(f"must be {limits}, got {quoted(raw)}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number{unit}, got {quoted(raw)}")
    return value


def quoted(raw: str) -> str:
    """`raw` quoted for a usage error, cut short if long: 5,000 digits are not echoed whole."""
    if len(raw) <= _QUOTED:
        return repr(raw)
    return f"{raw[:_QUOTED]!r}... ({len(raw):,} characters)"


def quoted_text(raw: str) -> str:
    """`raw`, cut short if long, to be quoted in a usage error."""
    return raw if len(raw) <= _QUOTED else f"{raw[:_QUOTED]}..."


def whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number, from `low` (and up to `high`) when given."""

    def parse(raw: str) -> int:
        value = number(raw, low=low, high=high)
        if not isinstance(value, int):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {quoted(raw)}")
        return value

    return parse


def moment(raw: str) -> int:
    """Unix seconds from Unix seconds (exact when whole) or an ISO date/time (UTC when no
    zone is given)."""
    stamp = number(raw, unit=" of seconds")
    if stamp is not None:
        return int(stamp)
    try:
        when = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO date/time (2025-11-01, 2025-11-01T12:00Z) or Unix seconds,"
            f" got {quoted(raw)}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp())


def seconds(
    *, zero: bool, high: int | None = None, what: str = "seconds"
) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds (or of `what`), above 0 (or from 0
    when `zero`), and up to `high` when given."""

    def parse(raw: str) -> float:
        value = number(raw, low=0 if zero else None, high=high, unit=f" of {what}")
        if value is None:
            raise argparse.ArgumentTypeError(f"expected {what}, got {quoted(raw)}")
        if value <= 0 and not zero:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {quoted(raw)}")
        return float(value)

    return parse


def address(raw: str) -> tuple[str, int]:
    """An argparse type: HOST:PORT (an IPv6 host in brackets, `[::1]:8080`), the port
    0-65535 (0: any free)."""
    host, colon, port = raw.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address without brackets: its port cannot be told apart
    port_number = number(port) if port.isascii() and port.isdigit() else None
    if not colon or not host or for_terminal(host) != host or host != host.strip():
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got {quoted(raw)}"
        )
    if not isinstance(port_number, int) or port_number > MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to {MAX_PORT}, got {quoted(port)}"
        )
    return host, port_number


def batch_id(raw: str) -> str:
    """An argparse type: something that can be a batch id (the API's, or a fake server's),
    as `retrieve_batch` checks one, and nothing a terminal would act on."""
    try:
        check_batch_id("ID", raw)
    except ValueError:
        pass
    else:
        if for_terminal(raw) == raw and raw == raw.strip():
            return raw
    raise argparse.ArgumentTypeError(
        f"expected a batch id such as batch_abc123, got {for_terminal(repr(raw))}"
    )


def project_id(raw: str) -> str:
    """An argparse type: an OpenAI project id, something a header and a terminal can hold."""
    if raw and raw == raw.strip() and raw.isprintable() and for_terminal(raw) == raw:
        return raw
    raise argparse.ArgumentTypeError(
        f"expected a project id such as proj_abc123, got {for_terminal(repr(raw))}"
    )


def fields(raw: str) -> list[str]:
    """An argparse type: comma-separated column names, each one `--fields` knows."""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in field_names()]
    if not names or unknown:
        # Quoted and neutralised: a name is whatever was typed, escapes included.
        shown = ", ".join(for_terminal(repr(quoted_text(name))) for name in unknown)
        raise argparse.ArgumentTypeError(
            f"unknown field(s) {shown or '(none given)'}; choose from {', '.join(field_names())}"
        )
    return names
