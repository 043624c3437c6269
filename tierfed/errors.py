"""Error codes of the contract and the one exception type that carries them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from graphql import GraphQLError


class Code(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    TIER_UNAVAILABLE = "TIER_UNAVAILABLE"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    # The node's own PostgreSQL does not answer: retry after ``extensions.retryAfter`` seconds.
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    # Not in the contract's table: what a masked internal error carries.
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class TierfedError(GraphQLError):
    """An error a caller can act on: a contract code and a message that says what to fix."""

    def __init__(self, code: Code, message: str, **extra: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extra})
        self.code = code


def bad_input(message: str, **extra: Any) -> TierfedError:
    return TierfedError(Code.BAD_USER_INPUT, message, **extra)


def forbidden(message: str, **extra: Any) -> TierfedError:
    return TierfedError(Code.FORBIDDEN, message, **extra)


def conflict(message: str, **extra: Any) -> TierfedError:
    return TierfedError(Code.CONFLICT, message, **extra)


class UserError(Exception):
    """A CLI-level error: printed as one line on stderr, exit status 2."""


RETRY_AFTER_S = 5


def database_down(exc: BaseException | None) -> bool:
    """True when ``exc`` says the node's PostgreSQL cannot be reached or went away
    (refused, shut down, starting up, a connection lost mid-way), not a bug of ours."""
    import asyncpg

    if isinstance(exc, (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                        asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.ConnectionDoesNotExistError)):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc) and "closed" in str(exc)


def database_unavailable() -> TierfedError:
    return TierfedError(Code.DATABASE_UNAVAILABLE,
                        f"this node's database is not answering right now: retry in {RETRY_AFTER_S} s",
                        retryAfter=RETRY_AFTER_S)
