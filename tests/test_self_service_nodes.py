"""Self tokens across real nodes over HTTP (the topology of test_persons_federation): a person
whose months are held on several nodes reads the whole statement at the central node; the
children are asked with a token the parent signs for that person alone, and audit the read."""

from __future__ import annotations

import pytest

from tests import test_persons_federation
from tests.conftest import token
from tests.test_persons_federation import (
    EMPLOYER,
    NODES,
    P1,
    P2,
    STATEMENT,
    Fed,
    expected_statement,
    statement_of,
)
from tierfed import codes
from tierfed.auth import Keys

fed = test_persons_federation.fed  # the four-node topology, started anew for this module

pytestmark = pytest.mark.federation


def me(sub: str = P2, role: str = "SELF_PERSON") -> str:
    return token("000000", (role,), sub=sub)


async def audited(fed: Fed, node: str, sub: str) -> list[tuple[str, str]]:
    rows = await fed.nodes[node].runtime.pool.fetch(
        "select scope, operation from pii_audit where id_number = $1 and caller = $1 order by id", sub)
    return [(r["scope"], r["operation"]) for r in rows]


async def test_a_person_reads_their_whole_statement_wherever_held(fed: Fed) -> None:
    # P2's months are on Shenzhen, Guangdong and Sichuan: three nodes below the central one.
    before = {n: len(await audited(fed, n, P2)) for n in NODES}
    body = await fed.ask("central", STATEMENT, {"id": P2}, me())
    assert "errors" not in body, body.get("errors")
    assert statement_of(body) == expected_statement(P2, "000000", fed.tree)
    assert body["data"]["person"]["idNumber"] == codes.mask_id(P2)
    staff = await fed.ask("central", STATEMENT, {"id": P2}, token("000000", ("VIEWER",)))
    assert body == staff
    # Audited at the central node (the caller's read) and at each child that gave a part (the
    # parent's token for P2: a self token, whose reach is its holder, not a region).
    after = {n: await audited(fed, n, P2) for n in NODES}
    new = after["central"][before["central"]:]
    assert len(new) == 1 and new[0][0] == "000000" and new[0][1].startswith("SELF_PERSON:sha256:")
    for child in ("guangdong", "sichuan", "shenzhen"):
        new = after[child][before[child]:]
        assert new and all(scope == "000000" and op.startswith("SELF_PERSON:") for scope, op in new), child


async def test_a_self_tokens_scope_claim_trims_nothing(fed: Fed) -> None:
    """A self token reads its holder wherever held: a scope in it (an identity provider's region
    claim, `tierfed token --scope`) is not the holder's, and had hidden P1's Beijing months, held
    by the central node, while the children were asked at the node's own scope."""
    scoped = token("440000", ("SELF_PERSON",), sub=P1)
    body = await fed.ask("central", STATEMENT, {"id": P1}, scoped)
    assert "errors" not in body, body.get("errors")
    assert statement_of(body) == expected_statement(P1, "000000", fed.tree)


async def test_the_parents_token_for_one_person_asks_a_child_about_no_one_else(fed: Fed) -> None:
    central = fed.nodes["central"].runtime
    derived = Keys(central.cfg.auth).sign(P2, "000000", ["SELF_PERSON"], 60)
    q = "query($a: [JSON!]!) { _tierCall(kind: \"statement\", args: $a) }"
    ok = await fed.ask("sichuan", q, {"a": [{"id": P2, "year": 2025}]}, derived)
    assert "errors" not in ok and ok["data"]["_tierCall"][0]["rows"]
    for args in ([{"id": P1, "year": 2025}], [{"id": P2, "year": 2025}, {"id": P1, "year": 2025}]):
        refused = await fed.ask("sichuan", q, {"a": args}, derived)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and refused.get("data") is None
    rollup = await fed.ask("sichuan", '{ region(code: "510000") { name } }', None, derived)
    assert rollup["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_someone_else_is_refused_at_every_node(fed: Fed) -> None:
    for node in NODES:
        body = await fed.ask(node, STATEMENT, {"id": P1}, me())
        assert body.get("data") is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", node
        assert P1 not in str(body)


async def test_an_employer_reads_its_contributions_across_nodes(fed: Fed) -> None:
    q = """query($c: String!) { employer(creditCode: $c) { creditCode name complete
      contributions(period: {from: "2025-01", to: "2025-12"}) { scheme employees contributorMonths
        contributionEmployer contributionIndividual averageBase } } }"""
    ours = await fed.ask("central", q, {"c": EMPLOYER}, me(EMPLOYER, "SELF_EMPLOYER"))
    assert "errors" not in ours, ours.get("errors")
    assert ours == await fed.ask("central", q, {"c": EMPLOYER}, token("000000", ("VIEWER",)))
    pension = ours["data"]["employer"]["contributions"][0]
    # P5 in Beijing (12 months, central node) and P3 in Chengdu (2 months, Sichuan node).
    assert pension["contributorMonths"] == 14 and ours["data"]["employer"]["complete"] is True
    assert (await fed.ask("central", STATEMENT, {"id": P2}, me(EMPLOYER, "SELF_EMPLOYER")))["errors"][0][
        "extensions"]["code"] == "FORBIDDEN"
    # Nothing of the staff's directory either.
    for q2 in ('{ nation { name } }', '{ rollup(region: "000000", period: {from: "2025-01", to: "2025-01"}) '
               '{ complete } }'):
        assert (await fed.ask("central", q2, None, me(EMPLOYER, "SELF_EMPLOYER")))["errors"][0]["extensions"][
            "code"] == "FORBIDDEN"
