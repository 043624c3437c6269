"""The history of imports (``imports``): who imported what, when, with what outcome."""

from __future__ import annotations

import strawberry
from strawberry.types import Info
from tierfed.resolvers import imports as ri

from tierfed.imports import ImportRunRec


@strawberry.type(description="One import of a file on this node, through the CLI or HTTP, whatever its outcome.")
class ImportRun(ImportRunRec):
    """The record as the API shows it: the fields below add a description or an ID type, the
    others are the record's as they are (a field keeps the record's place in the SDL)."""

    id: strawberry.ID = strawberry.field(description="The node's import sequence number: a later import has a larger id.")
    kind: str = strawberry.field(description="regions, agencies, pools, employers, persons, contributions or benefits.")
    sha256: str = strawberry.field(description="SHA-256 of the file as submitted (compressed bytes for a .csv.gz).")
    caller: str = strawberry.field(description="The token's subject, or \"cli\".")
    scope: str = strawberry.field(description="The caller's scope (the node's region for the CLI).")
    via: str = strawberry.field(description="\"cli\" or \"http\".")
    started_at: str = strawberry.field(description="ISO 8601 timestamps.")
    outcome: str = strawberry.field(description=(
        "imported (something changed), unchanged (nothing to change: the same file again, or records "
        "already stored), rejected (bad rows or an unreadable file: nothing changed), failed (an internal "
        "error: nothing changed)."))
    warnings: list[str] = strawberry.field(description="What the import reported without refusing the file.")
    version: strawberry.ID | None = strawberry.field(description=(
        "The data version this import produced: its own id when it changed data, null otherwise "
        "(until the node keeps data versions of its own)."))
    same_as: strawberry.ID | None = strawberry.field(description="For the same file imported again: the import it repeats.")


@strawberry.type
class ImportQueries:
    @strawberry.field(description=(
        "Imports on this node submitted inside the caller's scope, newest first. Needs OPERATOR or AUDITOR."),
        graphql_type=list[ImportRun])
    async def imports(self, info: Info, kind: str | None = None, first: int = 50) -> list[ri.ImportRunRec]:
        return await ri.imports(info, kind, first)
