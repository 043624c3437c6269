"""The shipped division tree and agencies, and SQL statements per operation."""

from __future__ import annotations

from typing import Any

import asyncpg
from tierfed.tiers.tree import Tree

from tests.conftest import Client, node_client, node_config, token
from tierfed.runtime import Runtime


def test_shipped_tree_is_the_real_one(tree: Tree) -> None:
    by_tier: dict[int, int] = {}
    for r in tree.by_code.values():
        by_tier[r.tier] = by_tier.get(r.tier, 0) + 1
    assert by_tier == {0: 1, 1: 31, 2: 333, 3: 2845}
    assert sum(1 for r in tree.by_code.values() if r.tier == 3 and tree.by_code[r.parent_code].tier == 1) == 117
    childless = sorted(r.code for r in tree.by_code.values() if r.tier == 2 and not tree.kids(r.code))
    assert childless == ["441900", "442000", "460400", "620200"]
    assert "810000" not in tree and "820000" not in tree  # Hong Kong and Macao run their own systems


async def test_migrated_database_holds_tree_and_agencies(fresh_db: str) -> None:
    con = await asyncpg.connect(fresh_db)
    try:
        assert await con.fetchval("select count(*) from region") == 3210
        assert await con.fetchval("select count(*) from agency") == 6420
        assert await con.fetchval("select ancestors from region where code = '440305'") == ["000000", "440000", "440300"]
        assert await con.fetchval("select count(*) from region_closure where descendant = '440305'") == 4
        assert await con.fetchval("select parent_code from agency where code = 'YB440305'") == "YB440300"
    finally:
        await con.close()


COUNTIES = """{ nation { children { code
  children { code tier parent { code } ancestors { code } agencies { code parent { code } }
    children { code tier parent { code name } ancestors { code name } agencies { code department } } } } } }"""


async def test_statements_do_not_grow_with_regions(fresh_db: str) -> None:
    # The whole directory is a big answer: raise the cost limit for it.
    async with node_client(fresh_db, node_config(limits={"max_cost": 1_000_000})) as empty_client:
        rt = empty_client.runtime
        await _count_statements(empty_client, rt)


async def _count_statements(empty_client: Client, rt: Runtime) -> None:
    before = rt.statements.count
    d = await empty_client.data(COUNTIES)
    nation_statements = rt.statements.count - before
    counties = [c for p in d["nation"]["children"] for x in p["children"]
                for c in ([x] if x["tier"] == "COUNTY" else x["children"])]
    assert len(counties) == 2845
    assert all(len(c["agencies"]) == 2 for c in counties)
    # one province instead of the nation: the same handful of statements
    before = rt.statements.count
    await empty_client.data(COUNTIES.replace("nation {", 'region(code: "460000") {'))
    province_statements = rt.statements.count - before
    # a batch per loader per level of the tree, whether 2,845 counties or 18
    assert nation_statements <= 8, nation_statements
    assert province_statements <= 8, province_statements


async def test_rollup_statements_are_constant(client: Client) -> None:
    rt = client.runtime
    q = """query($r: ID!) { rollup(region: $r, period: {from: "2025-01", to: "2025-06"}) {
      totals { insured } byChild { region { name } totals { pooled } byMonth { totals { insured } } } } }"""
    counts = []
    for region in ("000000", "440000", "440305"):
        before = rt.statements.count
        await client.data(q, {"r": region})
        counts.append(rt.statements.count - before)
    # region names, the region's summaries, all its children's summaries (added up over the
    # period for totals, month by month for byMonth): a batch each, for 31 provinces or none
    assert max(counts) <= 7, counts


async def test_directory_open_to_any_valid_token(client: Client) -> None:
    tok = token("440305", ())
    d = await client.data('{ nation { name } region(code: "510000") { name children { code } } agency(code: "RS110000") { name tier } }', tok=tok)
    assert d["nation"]["name"] == "中华人民共和国"
    assert d["agency"]["tier"] == "PROVINCE"
    assert (await client.data('{ region(code: "449999") { name } }'))["region"] is None


async def test_a_regions_import_that_moves_a_parent_is_served_from_the_new_tree(fresh_db: str, tmp_path: Any) -> None:
    """The importer notifies; the node's listener reloads the tree in a task it keeps."""
    import asyncio

    from tierfed.importer import import_file

    # children come from the node's in-memory tree (parent and ancestors from the database)
    q = '{ region(code: "440305") { parent { code } ancestors { code } } gz: region(code: "440100") { children { code } } }'

    def under_guangzhou(d: dict[str, Any]) -> bool:
        return "440305" in [r["code"] for r in d["gz"]["children"]]

    async with node_client(fresh_db, node_config("000000", "n")) as c:
        first = await c.data(q)
        assert first["region"]["parent"]["code"] == "440300" and not under_guangzhou(first)
        f = tmp_path / "regions.csv"
        f.write_text("code,name,tier,parent_code\n440305,南山区,county,440100\n", encoding="utf-8")
        await import_file(c.runtime.pool, c.runtime.node, "regions", f, progress=False)
        for _ in range(200):
            got = await c.data(q)
            if under_guangzhou(got):
                break
            await asyncio.sleep(0.05)
        assert under_guangzhou(got)
        assert got["region"] == {"parent": {"code": "440100"},
                                 "ancestors": [{"code": "000000"}, {"code": "440000"}, {"code": "440100"}]}
        assert c.runtime.node.child_for("440305") is None and c.runtime.tree.within("440305", "440100")


async def test_a_file_imported_again_after_another_renamed_its_regions_renames_them_back(
        fresh_db: str, tmp_path: Any) -> None:
    """B (a new name for a stored region), A (the old name back), then B again: B's name is back.
    A file that only renames was recorded as changing nothing, so a later file was compared with
    the last file that added something and could be skipped as already imported, leaving the
    other file's name."""
    from tierfed.importer import import_file

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("code,name,tier,parent_code\n440305,南山区,county,440300\n", encoding="utf-8")
    b.write_text("code,name,tier,parent_code\n440305,南山新区,county,440300\n", encoding="utf-8")
    con = await asyncpg.connect(fresh_db)
    try:
        async with node_client(fresh_db, node_config("000000", "n")) as c:
            rt = c.runtime
            first = await import_file(rt.pool, rt.node, "regions", b, progress=False)
            assert (first.outcome, first.inserted) == ("imported", 1), first
            assert await con.fetchval("select name from region where code = '440305'") == "南山新区"
            back = await import_file(rt.pool, rt.node, "regions", a, progress=False)
            assert (back.outcome, back.inserted) == ("imported", 1), back
            again = await import_file(rt.pool, rt.node, "regions", b, progress=False)
            assert again.outcome == "imported" and again.same_as is None, again
            assert await con.fetchval("select name from region where code = '440305'") == "南山新区"
            same = await import_file(rt.pool, rt.node, "regions", b, progress=False)
            assert same.outcome == "unchanged" and same.same_as == again.import_id, same
    finally:
        await con.close()
