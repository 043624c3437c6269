"""One person across the federation, on real nodes over HTTP, three tiers deep.

Topology: central (000000, holding Beijing and the other provinces) with
Guangdong (440000) and Sichuan (510000) as child nodes, and Shenzhen (440300)
as a child of Guangdong. Persons who moved are registered, and hold months, on
two or three of those nodes. Every expected figure is computed here from the
rows written to the import files, never read back from the server.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tierfed.tiers import person_store
from tierfed.tiers.remote import NODE_HEADER
from tierfed.tiers.tree import Tree

from tests.conftest import node_config, token
from tests.nodes import RunningNode, free_port, start_node
from tierfed import codes
from tierfed.importer import import_file

pytestmark = pytest.mark.federation

NATIONAL = token("000000", ("VIEWER", "PII_READER"))
SCHEMES = ("PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY")
NODES = {"central": "000000", "guangdong": "440000", "shenzhen": "440300", "sichuan": "510000"}
PARENT = {"guangdong": "central", "sichuan": "central", "shenzhen": "guangdong"}

# Where each node's records are handled (county codes of the 2025 division list).
BJ, BJ2, GZ, SZ, SZ2, CD = "110101", "110105", "440104", "440304", "440305", "510104"


def idn(seq: int, born: str = "19850312") -> str:
    first17 = f"110101{born}{seq:03d}"
    return first17 + codes.id_check_char(first17)


P1, P2, P3, P4, P5, P6 = (idn(i) for i in (11, 12, 13, 14, 15, 16))


def owner(region: str) -> str:
    if region.startswith("4403"):
        return "shenzhen"
    if region.startswith("44"):
        return "guangdong"
    if region.startswith("51"):
        return "sichuan"
    return "central"


def months(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# (person, scheme, region, months): contribution records. P1 moved from Guangzhou to
# Beijing in February; P2 from Shenzhen to Guangzhou to Chengdu; P3 is insured twice
# for March PENSION (Shenzhen and Chengdu); P4 twice for February MEDICAL within
# Guangdong's subtree (Guangzhou and Shenzhen's Nanshan); P5 never moved.
CONTRIBUTIONS = [
    (P1, "PENSION", GZ, months(1, 1)), (P1, "MEDICAL", GZ, months(1, 1)), (P1, "PENSION", BJ, months(2, 11)),
    (P2, "PENSION", SZ, months(1, 4)), (P2, "PENSION", GZ, months(5, 8)), (P2, "PENSION", CD, months(9, 12)),
    (P2, "MEDICAL", SZ, months(1, 4)), (P2, "MEDICAL", CD, months(9, 12)),
    (P3, "PENSION", SZ, months(1, 3)), (P3, "PENSION", CD, months(3, 4)),
    (P4, "MEDICAL", GZ, months(1, 2)), (P4, "MEDICAL", SZ2, months(2, 5)),
    (P5, "PENSION", BJ2, months(1, 12)),
]
# An employer with branches in Beijing (central node) and Chengdu (Sichuan node).
EMPLOYER = "91110101MA0000001" + codes.credit_check_char("91110101MA0000001")
EMPLOYER_OF = {(P5, BJ2): EMPLOYER, (P3, CD): EMPLOYER}
EMPLOYER_AT = [BJ, CD]
BENEFITS = [(P2, "MEDICAL", GZ, 6, Decimal("1234.56")), (P1, "MEDICAL", BJ, 3, Decimal("88.10"))]
REGISTRATIONS = {P1: [GZ, BJ], P2: [SZ, GZ, CD], P3: [SZ, CD], P4: [GZ, SZ2], P5: [BJ2]}


def amounts(person: str, month: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """base, employer, individual, individual account: distinct per person and month."""
    base = Decimal(8000 + 37 * month + int(person[14:17]))
    return base, (base * Decimal("0.16")).quantize(Decimal("0.01")), (base * Decimal("0.08")).quantize(
        Decimal("0.01")), (base * Decimal("0.08")).quantize(Decimal("0.01"))


def write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def expected_statement(person: str, within: str, tree: Tree, extra: list[Any] | None = None) -> dict[str, Any]:
    """The statement of ``person`` for 2025 from the records in ``within``'s subtree."""
    out = []
    for s in SCHEMES:
        ms: set[int] = set()
        e = i = a = b = Decimal("0.00")
        for p, scheme, region, mlist in [*CONTRIBUTIONS, *(extra or [])]:
            if p == person and scheme == s and tree.within(region, within):
                for m in mlist:
                    ms.add(m)
                    _, de, di, da = amounts(p, m)
                    e, i, a = e + de, i + di, a + da
        for p, scheme, region, _m, amount in BENEFITS:
            if p == person and scheme == s and tree.within(region, within):
                b += amount
        out.append({"scheme": s, "months": len(ms), "contributionEmployer": f"{e:.2f}",
                    "contributionIndividual": f"{i:.2f}", "individualAccount": f"{a:.2f}", "benefitsPaid": f"{b:.2f}"})
    return {"year": 2025, "schemes": out}


async def load(rt: Any, tmp: Path, name: str, persons: list[tuple[str, str]],
               contributions: list[tuple[str, str, str, list[int]]], benefits: list[Any]) -> None:
    d = tmp / name
    d.mkdir(exist_ok=True)
    if persons:
        await import_file(rt.pool, rt.node, "persons", write(d / "persons.csv", ["id_number", "name", "region_code"],
                                                              [[p, "测试" + p[-4:], r] for p, r in persons]), progress=False)
    employers = [r for r in EMPLOYER_AT if owner(r) == name and persons]
    if employers:
        await import_file(rt.pool, rt.node, "employers", write(
            d / "employers.csv", ["credit_code", "name", "region_code", "industry_risk_class"],
            [[EMPLOYER, "测试科技有限公司", r, 2] for r in employers]), progress=False)
    rows = []
    for p, scheme, region, mlist in contributions:
        for m in mlist:
            base, e, i, a = amounts(p, m)
            rows.append([p, scheme, f"2025-{m:02d}", region, EMPLOYER_OF.get((p, region), ""), base, e, i, a])
    if rows:
        await import_file(rt.pool, rt.node, "contributions", write(
            d / "contributions.csv", ["id_number", "scheme", "month", "region_code", "employer_credit_code", "base",
                                      "employer_amount", "individual_amount", "individual_account_amount"], rows),
            progress=False)
    if benefits:
        await import_file(rt.pool, rt.node, "benefits", write(
            d / "benefits.csv", ["id_number", "scheme", "month", "region_code", "amount"],
            [[p, s, f"2025-{m:02d}", r, a] for p, s, r, m, a in benefits]), progress=False)


@dataclass
class Fed:
    nodes: dict[str, RunningNode]
    dbs: dict[str, str]
    ports: dict[str, int]
    tree: Tree

    async def ask(self, node: str, query: str, variables: dict[str, Any] | None = None,
                  tok: str = NATIONAL) -> dict[str, Any]:
        return await self.nodes[node].post(query, variables, tok)

    def counts(self) -> dict[str, int]:
        return {n: r.requests for n, r in self.nodes.items()}

    async def start(self, name: str) -> None:
        self.nodes[name] = await start_node(config(name, self.ports), self.dbs[name], self.ports[name])


def config(name: str, ports: dict[str, int]) -> Any:
    def url(n: str) -> str:
        return f"http://127.0.0.1:{ports[n]}/graphql"

    children = [{"region": NODES[c], "url": url(c), "name": c, "timeout_s": 15}
                for c, p in PARENT.items() if p == name]
    extra = {"parent": {"url": url(PARENT[name]), "timeout_s": 15}} if name in PARENT else {}
    return node_config(NODES[name], name, children, **extra)


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[Fed]:
    tmp = tmp_path_factory.mktemp("persons")
    ports = {n: free_port() for n in NODES}
    dbs = {n: await new_db() for n in NODES}
    f = Fed({}, dbs, ports, tree)
    # Load each node's part before any node runs: the parents read their children's
    # persons when they start.
    from tierfed.runtime import open_runtime

    for name in NODES:
        rt = await open_runtime(config(name, ports), dbs[name], check_children=False)
        try:
            regs = [(p, r) for p, rs in REGISTRATIONS.items() for r in rs if owner(r) == name]
            await load(rt, tmp, name, regs, [c for c in CONTRIBUTIONS if owner(c[2]) == name],
                       [b for b in BENEFITS if owner(b[2]) == name])
        finally:
            await rt.close()
    for name in ("shenzhen", "sichuan", "guangdong", "central"):
        await f.start(name)
        # Each parent read its children's persons when it started; on a loaded machine a read
        # may have timed out (the child is then asked on every lookup): read again, bottom up.
        assert await f.nodes[name].runtime.index.sync_all() == {}, name
    yield f
    for n in f.nodes.values():
        await n.stop()


STATEMENT = """query($id: String!) { person(idNumber: $id) { idNumber name region { code } complete missing { code }
  statement(year: 2025) { year complete missing { code } schemes { scheme months contributionEmployer
    contributionIndividual individualAccount benefitsPaid } } } }"""


def statement_of(body: dict[str, Any]) -> dict[str, Any]:
    st = dict(body["data"]["person"]["statement"])
    assert st.pop("complete") is True and st.pop("missing") == []
    return st


@pytest.mark.parametrize("person", [P1, P2, P3, P4, P5])
@pytest.mark.parametrize("node", ["central", "guangdong", "shenzhen", "sichuan"])
async def test_statement_at_every_node_equals_the_records(fed: Fed, node: str, person: str) -> None:
    regs = [r for r in REGISTRATIONS[person] if fed.tree.within(r, NODES[node])]
    body = await fed.ask(node, STATEMENT, {"id": person})
    assert "errors" not in body, body.get("errors")
    if not regs:
        assert body["data"]["person"] is None
        return
    assert statement_of(body) == expected_statement(person, NODES[node], fed.tree)
    assert body["data"]["person"]["complete"] is True


async def test_moved_persons_show_every_month_at_the_central_node(fed: Fed) -> None:
    # The defect as reported: P1 had 1 of 11 PENSION months at the central node.
    body = await fed.ask("central", STATEMENT, {"id": P1})
    pension = statement_of(body)["schemes"][0]
    assert pension["months"] == 11
    p2 = statement_of(await fed.ask("central", STATEMENT, {"id": P2}))["schemes"]
    assert p2[0]["months"] == 12 and p2[1]["months"] == 8 and p2[1]["benefitsPaid"] == "1234.56"
    # Where the person is registered now: the node holding the latest record (Chengdu for P2).
    assert (await fed.ask("central", STATEMENT, {"id": P2}))["data"]["person"]["region"]["code"] == CD
    assert (await fed.ask("central", STATEMENT, {"id": P1}))["data"]["person"]["region"]["code"] == BJ


async def test_a_lookup_asks_only_the_children_that_hold_the_person(fed: Fed) -> None:
    for person, asked in ((P1, {"guangdong"}), (P5, set()), (P2, {"guangdong", "shenzhen", "sichuan"}),
                          (P4, {"guangdong", "shenzhen"})):
        before = fed.counts()
        body = await fed.ask("central", STATEMENT, {"id": person})
        after = fed.counts()
        assert "errors" not in body, body.get("errors")
        sent = {n for n in after if n != "central" and after[n] > before[n]}
        assert sent == asked, person
        assert all(after[n] - before[n] <= 1 for n in after)


async def test_scope_shows_only_the_parts_inside_it(fed: Fed) -> None:
    gd = token("440000", ("VIEWER",))
    body = await fed.ask("central", STATEMENT, {"id": P2}, gd)
    assert "errors" not in body, body.get("errors")
    assert statement_of(body) == expected_statement(P2, "440000", fed.tree)
    assert body["data"]["person"]["idNumber"] == codes.mask_id(P2)
    # P5 is registered in Beijing only: a Guangdong token is refused, and an unknown person is null.
    refused = await fed.ask("central", STATEMENT, {"id": P5}, gd)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and P5 not in refused["errors"][0]["message"]
    unknown = await fed.ask("central", STATEMENT, {"id": idn(99)}, gd)
    assert "errors" not in unknown and unknown["data"]["person"] is None


async def test_unmasked_reads_are_audited_where_they_are_answered(fed: Fed) -> None:
    pool = fed.nodes["central"].runtime.pool
    before = await pool.fetchval("select count(*) from pii_audit where id_number = $1", P2)
    await fed.ask("central", STATEMENT, {"id": P2})
    assert await pool.fetchval("select count(*) from pii_audit where id_number = $1", P2) == before + 1


async def test_import_on_a_grandchild_reaches_the_central_index(fed: Fed, tmp_path: Path) -> None:
    sz = fed.nodes["shenzhen"].runtime
    extra = [(P6, "PENSION", SZ, months(6, 9)), (P1, "MEDICAL", SZ, months(12, 12))]
    await load(sz, tmp_path, "late", [(P6, SZ), (P1, SZ)], extra, [])
    # Done once every ancestor has read the new persons (what `tierfed import` waits for).
    assert await sz.index.tell_parent() is None
    for node, child in (("guangdong", "shenzhen"), ("central", "guangdong")):
        held = await person_store.holders(fed.nodes[node].runtime.pool, [P6, P1])
        assert child in held[P6] and child in held[P1], node
    body = await fed.ask("central", STATEMENT, {"id": P6})
    assert statement_of(body) == expected_statement(P6, "000000", fed.tree, extra)
    body = await fed.ask("central", STATEMENT, {"id": P1})
    assert statement_of(body) == expected_statement(P1, "000000", fed.tree, extra)
    assert body["data"]["person"]["region"]["code"] == SZ


async def test_index_rebuilt_from_the_children(fed: Fed) -> None:
    central = fed.nodes["central"].runtime
    before = await person_store.index_size(central.pool)
    await person_store.index_clear(central.pool, "guangdong")
    assert "guangdong" not in await person_store.index_size(central.pool)
    rebuilt = await central.index.rebuild()
    assert await person_store.index_size(central.pool) == before
    assert rebuilt["guangdong"] == before["guangdong"]
    # Rebuilt again while lookups go on: the index never names fewer holders meanwhile, so no
    # answer misses a month (it was emptied first, and P2's Guangdong months went missing with
    # complete: true until the child's feed was read again).
    # The rebuild is held where it records what it read (the index's lock, held here) while a lookup runs.
    import asyncio

    want = expected_statement(P2, "000000", fed.tree)
    held = await asyncpg.connect(fed.dbs["central"])
    try:
        tr = held.transaction()
        await tr.start()
        await held.execute("select pg_advisory_xact_lock($1)", person_store.PRESENCE_LOCK)
        task = asyncio.create_task(central.index.rebuild())
        for _ in range(500):
            if await held.fetchval("select count(*) from pg_locks where locktype = 'advisory' and not granted"):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the rebuild never reached the index's lock")
        assert (await person_store.index_size(central.pool)).get("guangdong", 0) == before["guangdong"]
        body = await fed.ask("central", STATEMENT, {"id": P2})
        assert statement_of(body) == want and body["data"]["person"]["statement"]["complete"], body
        await tr.rollback()
        await task
    finally:
        await held.close()


async def test_a_node_down_is_named_and_the_rest_is_kept(fed: Fed) -> None:
    # Central's leases on its children taken just before Sichuan stops, and no check meanwhile:
    # within its lease Sichuan is trusted to hold no one the index does not name (a check after
    # it stopped would take its lease away, and every lookup would then ask it).
    links = fed.nodes["central"].runtime.links
    await links.pause()
    assert await links.check_children() == {"guangdong": True, "sichuan": True}
    await fed.nodes["sichuan"].stop()
    try:
        body = await fed.ask("central", STATEMENT, {"id": P2})
        person = body["data"]["person"]
        assert person["complete"] is False and person["missing"] == [{"code": "510000"}]
        st = person["statement"]
        assert st["complete"] is False and st["missing"] == [{"code": "510000"}]
        want = expected_statement(P2, "440000", fed.tree)
        assert st["schemes"] == want["schemes"]
        errs = body["errors"]
        assert {e["extensions"]["code"] for e in errs} == {"TIER_UNAVAILABLE"} and "sichuan" in errs[0]["message"]
        # A person no part of whom is on the node that is down: complete, no error.
        ok = await fed.ask("central", STATEMENT, {"id": P1})
        assert "errors" not in ok and ok["data"]["person"]["complete"] is True
    finally:
        await fed.start("sichuan")
        links.start()
    assert statement_of(await fed.ask("central", STATEMENT, {"id": P2})) == expected_statement(P2, "000000", fed.tree)


def test_statement_expectations_are_not_trivial() -> None:
    # The expectations computed above really span nodes (guards the test data itself).
    spans = {p: {owner(r) for q, _s, r, _m in CONTRIBUTIONS if q == p} for p in (P1, P2, P3)}
    assert spans == {P1: {"guangdong", "central"}, P2: {"shenzhen", "guangdong", "sichuan"},
                     P3: {"shenzhen", "sichuan"}}


EMPLOYER_Q = """query($c: String!) { employer(creditCode: $c) { creditCode region { code } complete missing { code }
  contributions(period: {from: "2025-01", to: "2025-12"}) { scheme employees contributorMonths
    contributionEmployer contributionIndividual averageBase } } }"""


def expected_employer(within: str, tree: Tree) -> list[dict[str, Any]]:
    out = []
    for s in SCHEMES:
        n, e, i, base, last = 0, Decimal("0.00"), Decimal("0.00"), Decimal("0"), set()
        for p, scheme, region, mlist in CONTRIBUTIONS:
            if scheme != s or EMPLOYER_OF.get((p, region)) != EMPLOYER or not tree.within(region, within):
                continue
            for m in mlist:
                b, de, di, _ = amounts(p, m)
                n, e, i, base = n + 1, e + de, i + di, base + b
                if m == 12:
                    last.add(p)
        avg = (base / n).quantize(Decimal("0.01")) if n else Decimal("0.00")
        out.append({"scheme": s, "employees": len(last), "contributorMonths": n, "contributionEmployer": f"{e:.2f}",
                    "contributionIndividual": f"{i:.2f}", "averageBase": f"{avg:.2f}"})
    return out


@pytest.mark.parametrize("node", ["central", "sichuan"])
async def test_employer_records_on_several_nodes_are_added_up(fed: Fed, node: str) -> None:
    body = await fed.ask(node, EMPLOYER_Q, {"c": EMPLOYER})
    assert "errors" not in body, body.get("errors")
    emp = body["data"]["employer"]
    assert emp["contributions"] == expected_employer(NODES[node], fed.tree)
    assert emp["complete"] is True and emp["region"]["code"] == (BJ if node == "central" else CD)
    if node == "central":
        # both branches count: Beijing's months and Chengdu's
        assert emp["contributions"][0]["contributorMonths"] == 12 + 2


DUPS = """query($r: ID!, $first: Int) { duplicateInsurance(region: $r, period: {from: "2025-01", to: "2025-12"},
  first: $first) { person { idNumber name } scheme month regions { code } } }"""


def expected_duplicates(within: str, tree: Tree) -> list[dict[str, Any]]:
    held: dict[tuple[str, str, int], set[str]] = {}
    for p, scheme, region, mlist in CONTRIBUTIONS:
        if tree.within(region, within):
            for m in mlist:
                held.setdefault((p, scheme, m), set()).add(region)
    return [{"person": {"idNumber": p, "name": "测试" + p[-4:]}, "scheme": s, "month": f"2025-{m:02d}",
             "regions": [{"code": r} for r in sorted(rs)]}
            for (p, s, m), rs in sorted(held.items(), key=lambda kv: (kv[0][0], SCHEMES.index(kv[0][1]), kv[0][2]))
            if len(rs) > 1]


@pytest.mark.parametrize(("node", "region"), [("central", "000000"), ("guangdong", "440000"), ("central", "440000"),
                                              ("shenzhen", "440300"), ("sichuan", "510000")])
async def test_duplicates_found_across_nodes(fed: Fed, node: str, region: str) -> None:
    body = await fed.ask(node, DUPS, {"r": region})
    assert "errors" not in body, body.get("errors")
    want = expected_duplicates(region, fed.tree)
    assert body["data"]["duplicateInsurance"] == want
    if region == "000000":
        # across nodes (Shenzhen and Chengdu) and inside Guangdong's subtree (Guangzhou and Nanshan)
        assert [(d["person"]["idNumber"], d["scheme"], d["month"]) for d in want] == [
            (P3, "PENSION", "2025-03"), (P4, "MEDICAL", "2025-02")]


async def test_duplicates_paged_masked_and_refused_outside_scope(fed: Fed) -> None:
    one = await fed.ask("central", DUPS, {"r": "000000", "first": 1})
    assert [d["person"]["idNumber"] for d in one["data"]["duplicateInsurance"]] == [P3]
    masked = await fed.ask("central", DUPS, {"r": "000000"}, token("000000", ("VIEWER",)))
    assert [d["person"]["idNumber"] for d in masked["data"]["duplicateInsurance"]] == [codes.mask_id(P3),
                                                                                      codes.mask_id(P4)]
    refused = await fed.ask("central", DUPS, {"r": "000000"}, token("440000", ("VIEWER",)))
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for first in (0, 1001):
        bad = await fed.ask("central", DUPS, {"r": "000000", "first": first})
        assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "first" in bad["errors"][0]["message"]


async def test_duplicates_ask_each_child_once(fed: Fed) -> None:
    before = fed.counts()
    body = await fed.ask("central", DUPS, {"r": "000000"})
    after = fed.counts()
    assert "errors" not in body
    assert {n: after[n] - before[n] for n in after} == {"central": 1, "guangdong": 1, "shenzhen": 1, "sichuan": 1}


async def test_duplicate_warning_through_the_cli(fed: Fed, tmp_path: Path) -> None:
    import asyncio
    import sys

    from tests.conftest import SECRET

    p7 = idn(17)
    sz = fed.nodes["shenzhen"].runtime
    await load(sz, tmp_path, "p7", [(p7, SZ)], [(p7, "PENSION", SZ, [3])], [])
    assert await sz.index.tell_parent() is None
    cfg = tmp_path / "sichuan.toml"
    cfg.write_text(f'[node]\nname = "sichuan"\nregion = "510000"\ndatabase_url = "{fed.dbs["sichuan"]}"\n'
                   f'[auth]\njwt_secret = "{SECRET}"\n[parent]\nurl = "http://127.0.0.1:{fed.ports["central"]}/graphql"\n')
    persons = write(tmp_path / "p.csv", ["id_number", "name", "region_code"], [[p7, "测试" + p7[-4:], CD]])
    base, e, i, a = amounts(p7, 3)
    records = write(tmp_path / "c.csv", ["id_number", "scheme", "month", "region_code", "employer_credit_code", "base",
                                         "employer_amount", "individual_amount", "individual_account_amount"],
                    [[p7, "PENSION", "2025-03", CD, "", base, e, i, a], [p7, "MEDICAL", "2025-03", CD, "", base, e, i, a]])

    async def cli(kind: str, path: Path) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tierfed.cli", "import", kind, str(path), "--config", str(cfg),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode(), err.decode()

    rc, out, err = await cli("persons", persons)
    assert rc == 0 and "warning" not in out + err, out + err
    rc, out, err = await cli("contributions", records)
    assert rc == 0, err
    assert "2 new" in out  # the import still goes through: cleaning up is the agencies' decision
    warned = [line.strip() for line in out.splitlines() if line.strip().startswith("warning:")]
    line = f"person {codes.mask_id(p7)} has a PENSION record for 2025-03 here ({CD}) and also in {SZ}: insured twice?"
    assert warned == [f"warning: {line}"], out + err
    assert p7 not in out + err
    # the history of the import keeps the warning
    history = await fed.nodes["sichuan"].runtime.pool.fetchval(
        "select warnings from import_run where kind = 'contributions' order by id desc limit 1")
    assert line in history
    body = await fed.ask("central", DUPS, {"r": "000000"})
    assert (p7, "PENSION", "2025-03", [SZ, CD]) in [
        (d["person"]["idNumber"], d["scheme"], d["month"], [r["code"] for r in d["regions"]])
        for d in body["data"]["duplicateInsurance"]]


async def test_index_rebuild_command(fed: Fed, tmp_path: Path) -> None:
    import asyncio
    import sys

    from tests.conftest import SECRET

    def cfg(name: str, children: str = "") -> Path:
        f = tmp_path / f"{name}.toml"
        f.write_text(f'[node]\nname = "{name}"\nregion = "{NODES[name]}"\ndatabase_url = "{fed.dbs[name]}"\n'
                     f'[auth]\njwt_secret = "{SECRET}"\n' + children)
        return f

    kids = "".join(f'[[children]]\nname = "{c}"\nregion = "{NODES[c]}"\nurl = "http://127.0.0.1:{fed.ports[c]}/graphql"\n'
                   for c in ("guangdong", "sichuan"))

    async def run(path: Path) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tierfed.cli", "index-rebuild", "--config", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode(), err.decode()

    sizes = await person_store.index_size(fed.nodes["central"].runtime.pool)
    rc, out, err = await run(cfg("central", kids))
    assert rc == 0, err
    assert out.splitlines() == [f"guangdong: {sizes['guangdong']} persons", f"sichuan: {sizes['sichuan']} persons"]
    rc, out, err = await run(cfg("shenzhen"))
    assert rc == 2 and err.count("\n") == 1 and "no [[children]]" in err


async def test_the_duplicates_internal_call_answers_only_the_node_above(fed: Fed) -> None:
    """Its answer names persons by their whole ID numbers and names, which the node above
    merges, masks and audits for its caller: a caller asking the child directly is refused
    (it had been answered, unmasked, to any token inside the region); the same request with the
    parent's own NODE token beside the caller's, as the parent sends it, is answered."""
    q = 'query($a: [JSON!]!) { _tierCall(kind: "duplicates", args: $a) }'
    a = {"a": [{"region": "440000", "from": "2025-01", "to": "2025-12", "first": 1000, "ids": []}]}
    for tok in (NATIONAL, token("440000", ("VIEWER",))):
        body = await fed.ask("guangdong", q, a, tok)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
        assert "node above" in body["errors"][0]["message"] and P4 not in str(body)

    async def with_assertion(assertion: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(fed.nodes["guangdong"].url, json={"query": q, "variables": a},
                             headers={"Authorization": f"Bearer {NATIONAL}", NODE_HEADER: assertion})
            return r.json()  # type: ignore[no-any-return]

    central = fed.nodes["central"].runtime.index.node_token("guangdong")  # as central signs it for Guangdong
    assert central is not None
    body = await with_assertion(central)
    assert "errors" not in body, body
    assert P4 in str(body)  # the node above gets the whole ID numbers it merges by
    # the caller's scope still holds (a county's token, forwarded by central, reads no province)
    county = token("440300", ("VIEWER",))
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(fed.nodes["guangdong"].url, json={"query": q, "variables": a},
                         headers={"Authorization": f"Bearer {county}", NODE_HEADER: central})
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # a user token, a forged one, one central signed for Sichuan (replayed by Sichuan at its sibling),
    # or one naming no node, in the node's place: refused as a node token
    for_sichuan = fed.nodes["central"].runtime.index.node_token("sichuan")
    unnamed = fed.nodes["central"].runtime.index.node_token()
    assert for_sichuan and unnamed
    for fake in (NATIONAL, central[:-4] + "AAAA", for_sichuan, unnamed):
        body = await with_assertion(fake)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        assert NODE_HEADER in body["errors"][0]["message"]


async def test_a_node_token_is_taken_only_by_the_node_it_was_signed_for(fed: Fed) -> None:
    """Central's NODE token for Sichuan, replayed by Sichuan at its sibling Guangdong, reads no
    person feed there (it had: every ID number Guangdong holds); the one for Guangdong does."""
    q = '{ _tierCall(kind: "presence", args: [{since: 0, first: 10}]) }'
    index = fed.nodes["central"].runtime.index
    refused = await fed.ask("guangdong", q, None, index.node_token("sichuan") or "")
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", refused
    assert "signed for sichuan" in refused["errors"][0]["message"]
    taken = await fed.ask("guangdong", q, None, index.node_token("guangdong") or "")
    assert "errors" not in taken and taken["data"]["_tierCall"][0]["ids"], taken


@pytest.mark.parametrize(("query", "variables", "tok", "code"), [
    ('{ _tierCall(kind: "presence", args: [{since: 0, first: 10}]) }', None, NATIONAL, "FORBIDDEN"),
    ("mutation { _tierPersonsChanged }", None, NATIONAL, "FORBIDDEN"),
    ("mutation { _tierPersonsChanged }", None, token("510000", ("NODE",)), "FORBIDDEN"),  # not a child of Guangdong
    ('{ _tierCall(kind: "elsewhere", args: [{from: "2025-01", to: "2025-02"}]) }', None, NATIONAL, "FORBIDDEN"),
    ('{ _tierCall(kind: "nope", args: []) }', None, NATIONAL, "BAD_USER_INPUT"),
    ('query($a: [JSON!]!) { _tierCall(kind: "statement", args: $a) }', {"a": [{"id": P1, "year": "2025"}]}, NATIONAL,
     "BAD_USER_INPUT"),
    ('query($a: [JSON!]!) { _tierCall(kind: "person", args: $a) }', {"a": [{"id": P1[:-1] + "0"}]}, NATIONAL,
     "BAD_USER_INPUT"),
    ('query($a: [JSON!]!) { _tierCall(kind: "duplicates", args: $a) }',
     {"a": [{"region": "440000", "from": 202501, "to": "2025-02", "first": 1, "ids": []}]}, NATIONAL, "BAD_USER_INPUT"),
    ('query($a: [JSON!]!) { _tierCall(kind: "duplicates", args: $a) }',
     {"a": [{"region": "440000", "from": "2025-01", "to": "2025-02", "first": 1, "ids": []}]},
     token("440300", ("VIEWER",)), "FORBIDDEN"),
])
async def test_internal_calls_refuse_what_they_must(fed: Fed, query: str, variables: Any, tok: str, code: str) -> None:
    body = await fed.ask("guangdong", query, variables, tok)
    assert body["errors"][0]["extensions"]["code"] == code, body


async def test_a_child_refusing_the_token_is_reported_as_such(new_db: Any) -> None:
    """A child node that trusts another issuer answers 401: the parent says so, not 'garbage'."""
    port = free_port()
    child = await start_node(node_config("510000", "sc-other", auth={"jwt_secret": "another-issuer-" + "y" * 32}),
                             await new_db(), port)
    parent = await start_node(node_config("000000", "c-other", [
        {"region": "510000", "url": f"http://127.0.0.1:{port}/graphql", "name": "sc-other", "timeout_s": 3}]),
        await new_db())
    try:
        body = await parent.post('{ rollup(region: "000000", period: {from: "2025-01", to: "2025-01"}) '
                                 '{ complete missing { code } } }', None, NATIONAL)
        assert body["data"]["rollup"] == {"complete": False, "missing": [{"code": "510000"}]}
        err = body["errors"][0]
        assert err["extensions"]["code"] == "TIER_UNAVAILABLE"
        assert "refused the caller's token (UNAUTHENTICATED" in err["message"] and "garbage" not in err["message"]
    finally:
        await parent.stop()
        await child.stop()


async def test_a_child_that_could_not_tell_its_parent_is_not_missed(new_db: Any, tmp_path: Path, tree: Tree) -> None:
    """A child that cannot reach its parent (its push and its tell fail; the parent still reaches
    it): its import is reported done once the lease it granted ran out, and the parent's lookup
    right after shows the new person's months. The parent's index, never told, had said the
    person was held nowhere below, with the statement complete."""
    import dataclasses

    port, dead = free_port(), free_port()
    child_cfg = node_config("440000", "gd-alone", parent={"url": f"http://127.0.0.1:{dead}/graphql", "timeout_s": 1})
    parent_cfg = node_config("000000", "c-alone", [
        {"region": "440000", "url": f"http://127.0.0.1:{port}/graphql", "name": "gd-alone", "timeout_s": 5}])
    child = await start_node(dataclasses.replace(child_cfg, link_lease_s=1.0), await new_db(), port)
    parent = await start_node(dataclasses.replace(parent_cfg, link_lease_s=1.0, index_sync_interval_s=3600),
                              await new_db())
    try:
        for _ in range(250):
            if parent.runtime.index.is_current("gd-alone"):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the parent never took its index of the child as current")
        from tierfed.imports.federation import after_import
        from tierfed.imports.report import Report

        async def imported(people: list[str], name: str) -> None:
            rows = [(p, "PENSION", GZ, months(1, 3)) for p in people]
            await load(child.runtime, tmp_path, name, [(p, GZ) for p in people], rows, [])
            # What `tierfed import` does once committed: the push and the tell both fail here.
            problems = await after_import(child.runtime, Report(kind="persons", rows=len(people), inserted=len(people),
                                                                unchanged=0), tmp_path / name / "persons.csv")
            assert len(problems) == 2, problems
            for p in people:
                body = await parent.post(STATEMENT, {"id": p}, NATIONAL)
                assert "errors" not in body, body["errors"]
                assert body["data"]["person"] is not None, f"the parent missed person {p} its child holds"
                assert statement_of(body) == expected_statement(p, "000000", tree, rows)

        start = await child.runtime.pool.fetchval("select coalesce(max(seq), 0) from person_presence")
        await imported([idn(21), idn(22)], "first")
        # The child's database restored from before that import (its feed numbered anew from
        # there): a person imported now is numbered below what the parent read, which it had
        # skipped for good.
        await child.runtime.pool.execute("delete from person_presence where seq > $1", start)
        await child.runtime.pool.execute("select setval('person_presence_seq', $1)", max(start, 1))
        # The parent's next check sees the feed's head below what it read: it reads the feed anew.
        # (A restore it never sees that way, the feed already past that point, takes `tierfed
        # index-rebuild`, as the README says.)
        assert await parent.runtime.links.check_children() == {"gd-alone": True}
        await parent.runtime.index.caught_up()
        await imported([idn(23)], "after-restore")
    finally:
        await parent.stop()
        await child.stop()


async def test_each_database_is_read_once_per_operation(fed: Fed) -> None:
    """A statement at the central node runs in two passes (its answer needs a child's): every
    node still runs each of its SQL statements once."""
    counters = {n: r.runtime.statements for n, r in fed.nodes.items()}
    for c in counters.values():
        c.queries = []
    try:
        body = await fed.ask("central", STATEMENT, {"id": P2}, token("000000", ("VIEWER",)))
        assert "errors" not in body, body.get("errors")
        ran = {n: list(c.queries or []) for n, c in counters.items()}
    finally:
        for c in counters.values():
            c.queries = None
    for node, queries in ran.items():
        assert len(queries) == len(set(queries)), (node, queries)
    assert ran["central"] and ran["guangdong"] and ran["shenzhen"] and ran["sichuan"]


async def test_a_node_grants_no_lease_while_any_of_its_processes_heard_its_index_is_behind(
        new_db: Any, tmp_path: Path) -> None:
    """A parent's worker hears a child's feed head ahead of the index (its reading held back): any
    other worker of the parent, answering the grandparent's check, grants no lease (it had granted
    one from its own memory, which had not heard the head, and the grandparent then took the
    parent's index as whole)."""
    import dataclasses

    from tierfed.runtime import open_runtime

    port, dead = free_port(), free_port()
    child_cfg = node_config("440000", "gd-w", parent={"url": f"http://127.0.0.1:{dead}/graphql", "timeout_s": 1})
    parent_cfg = dataclasses.replace(node_config("000000", "c-w", [
        {"region": "440000", "url": f"http://127.0.0.1:{port}/graphql", "name": "gd-w", "timeout_s": 5}],
        parent={"url": f"http://127.0.0.1:{dead}/graphql", "timeout_s": 1}), link_lease_s=30.0,
        index_sync_interval_s=3600)
    child = await start_node(dataclasses.replace(child_cfg, link_lease_s=30.0), await new_db(), port)
    parent_db = await new_db()
    parent = await start_node(parent_cfg, parent_db)
    other = await open_runtime(parent_cfg, parent_db, check_children=False)  # a second worker, not serving
    hold = await asyncpg.connect(parent_db)
    try:
        await parent.runtime.links.pause()
        assert await parent.runtime.links.check_children() == {"gd-w": True}
        assert (await other.links.grant())[1] > 0  # nothing behind: a lease
        await load(child.runtime, tmp_path, "gd-w", [(idn(31), GZ)], [(idn(31), "PENSION", GZ, months(1, 2))], [])
        async with hold.transaction():
            await hold.execute("lock table person_index in exclusive mode")  # the serving worker's reading waits
            assert await parent.runtime.links.check_children() == {"gd-w": True}  # it hears the head
            assert not parent.runtime.index.is_current("gd-w")
            assert (await other.links.grant())[1] == 0, "a worker granted a lease while the index was behind"
        await parent.runtime.index.caught_up()
        assert parent.runtime.index.is_current("gd-w")
        assert (await other.links.grant())[1] > 0
        # A rebuild by another process left the shared watermark below the head (its reading ended
        # before this worker's): no worker grants a lease, and the next check reads again (it had
        # not, this worker's memory being ahead, and no lease was granted until the periodic sync).
        await person_store.sync_at(parent.runtime.pool, "gd-w", 0)
        assert (await other.links.grant())[1] == 0
        assert await parent.runtime.links.check_children() == {"gd-w": True}
        await parent.runtime.index.caught_up()
        assert (await other.links.grant())[1] > 0
    finally:
        await hold.close()
        await other.close()
        await parent.stop()
        await child.stop()
