"""Property: money is conserved across nodes whatever the sequence of late records,
raises and transfers (real nodes over HTTP, three tiers deep).

Each example runs a random sequence on the same federation (state carries over:
the law must hold in every state) and then checks, to the fen, that the open
pools of the whole federation add up to the origin pools plus every flow. Every
example contains a transfer that must be applied, so the law is not checked on
refusals alone (an example whose node has no person left to move is discarded:
the world is shared by the examples, and a small node's persons run out).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tierfed.tiers.tree import Tree

from tests import federation_money
from tests.conftest import SECRET, token
from tests.nodes import RunningNode, free_port, start_node
from tests.test_changes import NODES, REGIONS, configs, load_split, make_keys
from tierfed import codes
from tierfed.config import Limits
from tierfed.importer import import_file

pytestmark = pytest.mark.federation

OP = token("000000", ("VIEWER", "OPERATOR", "PII_READER"), sub="op-prop")
RAISE = "mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { state } }"
TRANSFER = "mutation($in: TransferInsuranceInput!) { transferInsurance(input: $in) { transfer { state } } }"
DESTINATIONS = {"guangdong": "510104", "sichuan": "440106", "shenzhen": "510105"}
_ = SECRET


@dataclasses.dataclass
class World:
    nodes: dict[str, RunningNode]
    cons: dict[str, asyncpg.Connection]
    tmp: Path
    step: int = 0
    applied: int = 0


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[World]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    dbs = await load_split(tree, new_db, tmp_path_factory.mktemp("split"), configs(keys, {n: i + 1 for i, n in enumerate(NODES)}))
    ports = {n: free_port() for n in NODES}
    big = Limits(max_aliases=5000, max_root_fields=5000, max_cost=100_000_000, max_body_bytes=10_000_000)
    cfgs = {n: dataclasses.replace(c, limits=big) for n, c in configs(keys, ports).items()}
    nodes = {n: await start_node(cfgs[n], dbs[n], ports[n]) for n in ("shenzhen", "guangdong", "sichuan", "central")}
    cons = {n: await asyncpg.connect(dbs[n]) for n in NODES}
    yield World(nodes, cons, tmp_path_factory.mktemp("late"))
    for c in cons.values():
        await c.close()
    for rn in nodes.values():
        await rn.stop()


async def _late(w: World, node: str, scheme: int, month: str, amount: int) -> None:
    """A record arriving late at ``node`` for a person without one that month."""
    row = await w.cons[node].fetchrow(
        "select p.id_number, p.region_code from person p where p.region_code <> all($3::text[]) and not exists "
        "(select 1 from contribution c where c.id_number = p.id_number and c.scheme = $1 and c.month = $2::date) "
        "and not exists (select 1 from insurance_transfer t where t.id_number = p.id_number) order by 1 limit 1",
        scheme, codes.month(month), list(REGIONS.values()))
    if row is None:
        return
    w.step += 1
    f = w.tmp / f"late{w.step}.csv"
    with f.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id_number", "scheme", "month", "region_code", "employer_credit_code", "base", "employer_amount",
                      "individual_amount", "individual_account_amount"])
        out.writerow([row["id_number"], ["PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY"][scheme - 1],
                      month, row["region_code"], "", f"{amount * 10}.00", f"{amount}.17", "20.00", "5.00"])
    rt = w.nodes[node].runtime
    await import_file(rt.pool, rt.node, "contributions", f, progress=False)


async def _transfer(w: World, node: str, month: str) -> bool | None:
    person = await w.cons[node].fetchval(
        "select p.id_number from person p where p.region_code like $1 || '%' and p.region_code <> $2 and not exists "
        "(select 1 from insurance_transfer t where t.id_number = p.id_number) order by random() limit 1",
        REGIONS[node][:2] if node != "shenzhen" else "4403", REGIONS[node])
    if person is None:  # every person of the node's data set was moved by earlier examples
        return None
    w.step += 1
    got = await w.nodes["central"].post(TRANSFER, {"in": {"idNumber": person, "to": DESTINATIONS[node],
                                                          "effectiveFrom": month, "idempotencyKey": f"p-t{w.step}"}}, OP)
    # no waiting for the nodes to apply it: the answer comes once they have (the law is checked right after)
    assert not any(e["extensions"]["code"] == "INTERNAL_SERVER_ERROR" for e in got.get("errors", [])), got
    return "errors" not in got and got["data"]["transferInsurance"]["transfer"]["state"] == "COMMITTED"


async def _raise(w: World, scheme: str, month: str) -> None:
    w.step += 1
    await w.nodes["central"].post(RAISE, {"in": {"scheme": scheme, "region": "000000", "effectiveFrom": month,
                                                 "idempotencyKey": f"p-r{w.step}"}}, OP)


MONTHS = st.sampled_from(["2024-11", "2024-12", "2025-01", "2025-03", "2025-05"])
OPS = st.one_of(
    st.tuples(st.just("late"), st.sampled_from(["central", "guangdong", "shenzhen", "sichuan"]),
              st.integers(1, 5), MONTHS, st.integers(1, 9999)),
    st.tuples(st.just("raise"), st.sampled_from(["PENSION", "MEDICAL", "UNEMPLOYMENT"]),
              st.sampled_from(["2025-02", "2025-04", "2025-06"])),
    st.tuples(st.just("transfer"), st.sampled_from(["guangdong", "sichuan", "shenzhen"]),
              st.sampled_from(["2025-07", "2025-09", "2025-11"])),
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=5),
       must=st.tuples(st.sampled_from(["guangdong", "sichuan", "shenzhen"]), st.sampled_from(["2025-08", "2025-10"])))
async def test_money_is_conserved_across_nodes(world: World, ops: list[tuple[Any, ...]], must: tuple[str, str]) -> None:
    for op in ops:
        if op[0] == "late":
            await _late(world, op[1], op[2], op[3], op[4])
        elif op[0] == "raise":
            await _raise(world, op[1], op[2])
        else:
            world.applied += bool(await _transfer(world, op[1], op[2]))
    applied = await _transfer(world, *must)
    assume(applied is not None)  # the node has no person left to move: not this example's point
    assert applied, "a transfer of a person with no transfer yet must be applied"
    # checked as soon as the last change answered: every node has applied it by then
    await federation_money.check(lambda q: world.nodes["central"].post(q, None, OP), world.cons, REGIONS)
