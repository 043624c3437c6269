"""transferInsurance, a person's transfers and the transfer flows of pools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from strawberry.types import Info
from tierfed.tiers import transfers as tt
from tierfed.tiers import transferstore as ts
from tierfed.tiers.figures import SCHEMES
from tierfed.tiers.store import PoolRec

from tierfed import codes
from tierfed.errors import bad_input

from .common import as_month
from .context import ctx
from .persons import PersonView


@dataclass(frozen=True)
class SchemeMoved:
    """One scheme's part of a transfer, with the regions and month its pools are found by."""

    scheme: int
    individual_account: Decimal
    pooled_fund: Decimal
    from_region: str
    to_region: str
    month: date


async def transfer_insurance(info: Info, id_number: str, to: str, effective_from: object, idempotency_key: str,
                             dry_run: bool) -> tt.TransferOutcome:
    c = ctx(info)
    if "*" in id_number:
        raise bad_input("idNumber is masked: send the person's full ID number", argument="idNumber")
    try:
        idn = codes.id_number(id_number)
    except ValueError as e:
        raise bad_input(str(e), argument="idNumber") from None
    code = to  # checked by its rule (resolvers/permissions.py)
    region = c.node.tree.by_code[code]
    if not (region.tier == 3 or (region.tier == 2 and not c.node.tree.kids(code))):
        raise bad_input(f"to must be a county, or a city without counties; {code} is a "
                        f"{c.node.tree.tier_name(code).lower()}", argument="to")
    if not idempotency_key or len(idempotency_key) > 200:
        raise bad_input("idempotencyKey must be 1 to 200 characters", argument="idempotencyKey")
    eff = as_month(effective_from, "effectiveFrom")
    inp = tt.TransferInput(idn, code, eff, idempotency_key, dry_run)
    out = await tt.transfer(c.runtime.changes, inp, c.caller.sub)
    # The answer releases the person's name and figures to an operator over the destination
    # (the origin may lie outside its scope): each release, a dry run's included, is in the
    # PII audit under the caller, for the AUDITOR to see who looked at whom.
    c.pii_reads.append((idn, f"transferInsurance{':dryRun' if dry_run else ''}:{c.operation_name or 'anonymous'}"))
    return out


def person_of(t: ts.TransferRec) -> PersonView:
    """The person a transfer moved, as the transfer releases them (its own figures, nothing else)."""
    return PersonView(t.id_number, t.name, t.to_region, (), (t,))


def schemes_of(t: ts.TransferRec) -> list[SchemeMoved]:
    return [SchemeMoved(int(s["scheme"]), Decimal(s["individualAccount"]), Decimal(s["pooledFund"]),
                        t.from_region, t.to_region, t.effective_from) for s in t.schemes]


def scheme_name(root: SchemeMoved) -> str:
    return SCHEMES[root.scheme - 1]


async def pool_at(info: Info, region: str, scheme: int, month: date) -> PoolRec | None:
    """The pool covering ``region`` for the scheme in the month, when the caller may see it; else null
    (the origin releases the person's figures, not its pools). A region a child node holds is
    answered by that child (``resolvers/held.py``)."""
    c = ctx(info)
    if not c.node.in_subtree(region) or not c.access.may(region):
        return None
    rec: PoolRec | None = await c.loaders.pool_covering.load((region, scheme, month))
    if rec is None or not c.access.may(rec.region_code):
        return None
    return rec


async def person_transfers(root: PersonView, info: Info) -> list[ts.TransferRec]:
    """The person's transfers, as the person's parts on every node below record them (``tiers.persons``)."""
    return list(root.transfers)


async def pool_transfers(root: PoolRec, info: Info, as_of: object | None, direction: str) -> Decimal:
    """Pooled funds moved in (or out) of the pool by transfers effective from openedFrom to asOf."""
    at = as_month(as_of, "asOf") if as_of is not None else codes.current_month()
    last = min(at, root.closed_after) if root.closed_after else at
    if last < root.opened_from:
        return Decimal("0.00")
    s = await ctx(info).summary.load((root.region_code, root.opened_from, last, True))
    return sum((f.transfers_in if direction == "in" else f.transfers_out
                for (_, sc), f in s.rows.items() if sc == root.scheme), Decimal("0.00"))
