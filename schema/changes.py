"""Changes that span nodes: their states, participants and the ``changes`` list."""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.types import Info
from tierfed.resolvers import changes as rc

from .types import Region, region_of


@strawberry.enum(description=(
    "Where a change stands. A change that spans nodes is COMMITTED once the\n"
    "coordinator has decided it; a participant that was down applies it when it returns."))
class ChangeState(Enum):
    PENDING = "PENDING"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"


@strawberry.type
class ChangeParticipant:
    node: str = strawberry.field(description="The node's configured name.")
    state: ChangeState

    region = strawberry.field(resolver=region_of, graphql_type=Region)


@strawberry.type(description="A change that spans nodes, as its coordinator records it.")
class Change:
    id: strawberry.ID
    kind: str = strawberry.field(description=(
        '"raisePoolingLevel", "transferInsurance", or another kind of change across nodes.'))
    state: ChangeState
    idempotency_key: str
    started_at: str = strawberry.field(description="ISO 8601 timestamps.")
    decided_at: str | None
    participants: list[ChangeParticipant]


@strawberry.type
class ChangeQueries:
    @strawberry.field(description="Changes this node coordinates or takes part in, newest first (OPERATOR or AUDITOR).",
                      graphql_type=list[Change])
    async def changes(self, info: Info, state: ChangeState | None = None,
                      first: int | None = 50) -> list[rc.ChangeView]:
        return await rc.changes(info, state.value if state else None, 50 if first is None else first)
