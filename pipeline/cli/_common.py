"""What every sub-command shares: options, the one error handler, opening the warehouse.

Errors: every command fails with ONE line on stderr and a documented exit status (0 ok,
1 failure, 2 bad usage, 3 some input rejected), never a traceback. ``MgoldGroup`` (the
root command's class) turns any exception raised below it into that line, so commands
raise ``MgoldError`` subclasses (or anything) instead of catching per command.
``MGOLD_DEBUG=1`` re-raises, for a developer's traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from ..errors import EXIT_FAILURE, EXIT_USAGE, MgoldError, UsageError

Warehouse = Annotated[
    Path,
    typer.Option("--warehouse", "-w", help="DuckDB warehouse file (env MGOLD_WAREHOUSE).",
                 envvar="MGOLD_WAREHOUSE"),
]
DEFAULT_WAREHOUSE = Path(os.environ.get("MGOLD_WAREHOUSE", "warehouse.duckdb"))

Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: --set section.key=value (repeatable)."),
]
Wait = Annotated[bool, typer.Option("--wait", help="If another process is writing the warehouse, wait for "
                                                  "it instead of failing.")]


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    """Print one clear line on stderr and exit non-zero."""
    typer.echo(f"mgold: error: {message}", err=True)
    raise typer.Exit(code)


def one_line(e: BaseException) -> str:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first or type(e).__name__


try:                                       # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover - an older typer on click
    from click import ClickException as _ClickException


class MgoldGroup(TyperGroup):
    """The root command: one line and the documented exit status for any failure below it."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _ClickException):
            raise
        except KeyboardInterrupt:
            typer.echo("mgold: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - the one place every failure becomes one line
            if os.environ.get("MGOLD_DEBUG"):
                raise
            if isinstance(e, MgoldError):
                msg, code = one_line(e), e.exit_code
            else:
                msg, code = f"{type(e).__name__}: {one_line(e)}", EXIT_FAILURE
            typer.echo(f"mgold: error: {msg}", err=True)
            raise typer.Exit(code) from None


def config(set_: list[str] | None, base=None):
    """The config with ``--set`` overrides applied; a bad key or value is bad usage (exit 2)."""
    from ..config import DEFAULT

    try:
        return (base or DEFAULT).with_overrides(set_)
    except (KeyError, ValueError) as e:
        raise UsageError(one_line(e)) from None


@contextmanager
def reading(warehouse: Path) -> Iterator:
    """The command's one read-only connection; a missing warehouse is an error."""
    from ..warehouse import open_warehouse

    with open_warehouse(warehouse, read_only=True) as con:
        yield con


@contextmanager
def writing(warehouse: Path, wait: bool = False) -> Iterator:
    """The command's one connection, holding the warehouse's write lock until the block ends."""
    from ..warehouse import open_warehouse

    with open_warehouse(warehouse, command="mgold " + " ".join(sys.argv[1:3]), wait=wait) as con:
        yield con


__all__ = ["Warehouse", "DEFAULT_WAREHOUSE", "Sets", "Wait", "fail", "MgoldGroup", "config", "reading",
           "writing", "EXIT_USAGE"]
