"""The root types and the schema object. ``tierfed schema`` prints what this serves."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from decimal import Decimal as PyDecimal
from typing import Any, NoReturn

import strawberry
from strawberry.federation.schema import FederationAny
from strawberry.scalars import JSON
from strawberry.types import Info
from tierfed.resolvers import adjustment as adj
from tierfed.resolvers import audit, internal
from tierfed.resolvers import duplicates as dup
from tierfed.resolvers import employers as emp
from tierfed.resolvers import persons as per
from tierfed.resolvers import pools as pol
from tierfed.resolvers import regions as reg
from tierfed.resolvers import rollups as rol
from tierfed.resolvers.adjustment import CentralAdjustmentRec
from tierfed.resolvers.duplicates import DuplicateRec
from tierfed.resolvers.employers import EmployerView
from tierfed.resolvers.persons import PersonView
from tierfed.resolvers.rollups import RollupRec
from tierfed.tiers.store import AgencyRec, PiiReadRec, PoolRec
from tierfed.tiers.tree import RegionRec

from tierfed.errors import bad_input

from . import budgets as budget_types
from . import changes as change_types
from . import descriptions
from . import imports as import_types
from . import pooling as pooling_types
from . import ranking as ranking_types
from . import report as report_types
from . import settlement as settlement_types
from . import transfers as transfer_types
from .scalars import Decimal
from .types import (
    Agency,
    CentralAdjustment,
    DuplicateInsurance,
    Employer,
    PeriodInput,
    Person,
    Pool,
    Region,
    Rollup,
    Scheme,
    TierSummaryKey,
)


@strawberry.type(description="One read of an unmasked ID number: who, when, which person, which operation.")
class PiiRead:
    id: strawberry.ID
    at: str
    caller: str
    scope: str
    id_number: str
    operation: str


@strawberry.type
class Query(pooling_types.PoolingQueries, import_types.ImportQueries, change_types.ChangeQueries,
            budget_types.BudgetQueries, ranking_types.RankingQueries, report_types.ReportQueries):
    @strawberry.field(graphql_type=Region)
    async def nation(self, info: Info) -> RegionRec:
        return await reg.nation(info)

    @strawberry.field(description="Null for a well-formed code that names no region; BAD_USER_INPUT for a malformed one.",
                      graphql_type=Region | None)
    async def region(self, info: Info, code: strawberry.ID) -> RegionRec | None:
        return await reg.region(info, str(code))

    @strawberry.field(graphql_type=Agency | None)
    async def agency(self, info: Info, code: strawberry.ID) -> AgencyRec | None:
        return await reg.agency(info, str(code))

    @strawberry.field(graphql_type=Rollup)
    def rollup(self, info: Info, region: strawberry.ID, period: PeriodInput,
               schemes: list[Scheme] | None = None) -> RollupRec:
        return rol.rollup(info, str(region), period.from_, period.to,
                          [s.value for s in schemes] if schemes else None)

    @strawberry.field(graphql_type=Pool | None)
    async def pool(self, info: Info, id: strawberry.ID) -> PoolRec | None:
        return await pol.pool(info, str(id))

    @strawberry.field(graphql_type=Person | None)
    async def person(self, info: Info, id_number: str) -> PersonView | None:
        found: PersonView | None = await per.person(info, id_number)
        return found

    @strawberry.field(description="Null for a well-formed credit code this federation does not know; FORBIDDEN outside scope.",
                      graphql_type=Employer | None)
    async def employer(self, info: Info, credit_code: str) -> EmployerView | None:
        found: EmployerView | None = await emp.employer(info, credit_code)
        return found

    @strawberry.field(graphql_type=CentralAdjustment)
    async def central_adjustment(self, info: Info, year: int, ratio: Decimal) -> CentralAdjustmentRec:
        return await adj.central_adjustment(info, year, ratio)

    @strawberry.field(description=(
        "Persons with contribution records of the same scheme and month in two or more regions of the subtree, "
        "wherever in the federation those records are held; ordered by ID number, scheme, month; at most `first`."),
        graphql_type=list[DuplicateInsurance])
    async def duplicate_insurance(self, info: Info, region: strawberry.ID, period: PeriodInput,
                                  first: int | None = 100) -> list[DuplicateRec]:
        return await dup.duplicate_insurance(info, str(region), period.from_, period.to,
                                             100 if first is None else first)

    @strawberry.field(description=(
        "Reads of unmasked ID numbers on this node, newest first. Needs AUDITOR and a scope over the node's region."),
        graphql_type=list[PiiRead])
    async def pii_reads(self, info: Info, id_number: str | None = None, limit: int = 100) -> list[PiiReadRec]:
        return await audit.pii_reads(info, id_number, limit)

    @strawberry.field(name="_tierSummaries", description=(
        "Internal, node to node: full summaries per key, as JSON (complete, missing, rows of "
        "[month, scheme, contributions, employer, individual, individualAccount, base, benefits, benefitsPaid])."),
        graphql_type=list[JSON])
    async def tier_summaries(self, info: Info, keys: list[TierSummaryKey]) -> list[dict[str, Any]]:
        return await internal.tier_summaries(info, keys)

    @strawberry.field(name="_tierCall", description=(
        "Internal, node to node: a parent's calls of one kind (person, statement, employer, duplicates, presence, "
        "registered) "
        "with JSON arguments, answered for this node's subtree, one JSON answer per argument."),
        graphql_type=list[JSON])
    async def tier_call(self, info: Info, kind: str, args: list[JSON]) -> list[Any]:
        return await internal.tier_call(info, kind, args)


@strawberry.type
class Mutation(pooling_types.PoolingMutations, transfer_types.TransferMutations, budget_types.BudgetMutations,
               settlement_types.SettlementMutations):
    @strawberry.mutation(name="_tierPersonsChanged", description=(
        "Internal, child node to parent, with the child's NODE token: the persons the child holds changed. "
        "True once this node and every ancestor have read them."))
    async def tier_persons_changed(self, info: Info) -> bool:
        return await internal.persons_changed(info)


LIVE_ONLY = ("subscriptions are answered by the node's live answers (tierfed.live), over graphql-transport-ws or "
             "Server-Sent Events, never by this resolver")


def _served_live() -> NoReturn:
    # tierfed.live runs a subscription as the query of the same field, once per distinct question:
    # graphql's own subscribe is never called on this schema (the HTTP endpoint refuses subscriptions).
    # Each field below calls this at its first step; its `yield`, never reached, makes it the async
    # generator strawberry wants.
    raise bad_input(LIVE_ONLY)


@strawberry.type(description=(
    "Live answers: each field sends the answer of the query field of the same name, then a new answer each time "
    "a commit on any node of the subtree changes it. Over graphql-transport-ws (a WebSocket at /graphql) or "
    "GraphQL over Server-Sent Events (POST or GET /graphql with Accept: text/event-stream); the same token, scope "
    "and limits as queries, and the subscription ends when the token expires."))
class Subscription:
    @strawberry.subscription(description="Query.nation, live.")
    async def nation(self) -> AsyncGenerator[Region, None]:
        _served_live()
        yield

    @strawberry.subscription(description="Query.region, live: the region and what is selected below it.")
    async def region(self, code: strawberry.ID) -> AsyncGenerator[Region | None, None]:
        _served_live()
        yield

    @strawberry.subscription(description="Query.rollup, live: new totals after every commit that changes them, "
                                         "on any node of the region's subtree.")
    async def rollup(self, region: strawberry.ID, period: PeriodInput,
                     schemes: list[Scheme] | None = None) -> AsyncGenerator[Rollup, None]:
        _served_live()
        yield

    @strawberry.subscription(description="Query.pool, live: its balance after every commit that changes it.")
    async def pool(self, id: strawberry.ID) -> AsyncGenerator[Pool | None, None]:
        _served_live()
        yield

    @strawberry.subscription(description="Query.employer, live.")
    async def employer(self, credit_code: str) -> AsyncGenerator[Employer | None, None]:
        _served_live()
        yield

    @strawberry.subscription(description="Query.centralAdjustment, live.")
    async def central_adjustment(self, year: int, ratio: Decimal) -> AsyncGenerator[CentralAdjustment, None]:
        _served_live()
        yield


ENTITY_KEYS = {"Region": "code", "Agency": "code", "Pool": "id"}


class Schema(strawberry.federation.Schema):
    """The federation schema, with representations checked before they are resolved:
    a malformed one is a BAD_USER_INPUT at its index, never an internal error."""

    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        out: list = []
        for i, rep in enumerate(representations):
            problem = _representation_problem(rep)
            if problem is None and isinstance(rep, dict):  # (a representation without a problem is a dict)
                out.extend(super().entities_resolver(info, [FederationAny(dict(rep))]))
            else:
                out.append(bad_input(f"representation {i}: {problem}", argument="representations"))
        return out


def _representation_problem(rep: object) -> str | None:
    if not isinstance(rep, dict):
        return "expected an object with __typename and the entity's key"
    typename = rep.get("__typename")
    if typename not in ENTITY_KEYS:
        return f"__typename must be one of {', '.join(ENTITY_KEYS)}"
    key = ENTITY_KEYS[typename]
    if set(rep) != {"__typename", key} or not isinstance(rep[key], str):
        return f"a {typename} is referenced by its {key} (a string) alone"
    return None


def build_schema() -> strawberry.federation.Schema:
    built = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        scalar_overrides={PyDecimal: Decimal},
    )
    descriptions.apply(built._schema)
    return built


schema = build_schema()
