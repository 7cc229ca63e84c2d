"""The errors a user sees: each carries its documented exit status (README "Exit status").

Commands never print tracebacks: the CLI turns an ``MgoldError`` into one line on
stderr and its ``exit_code``; any other exception into one line and status 1.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3


class MgoldError(Exception):
    """A failure with a one-line message naming the file / model / key and the cause."""

    exit_code = EXIT_FAILURE


class UsageError(MgoldError):
    """Bad usage: an unknown option value, a missing path, a bad --set."""

    exit_code = EXIT_USAGE


class WarehouseBusy(MgoldError):
    """Another process holds the warehouse (a build, an ingest, ...)."""


class WarehouseError(MgoldError):
    """The warehouse cannot be opened or is not what the command needs."""
