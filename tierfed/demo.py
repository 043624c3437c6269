"""``tierfed demo``: a central node and three province nodes on one embedded PostgreSQL.

One database per node; the other 28 provinces are held by the central node
itself. The data set is generated once (seeded) and split by the node that
holds each record's region; a second start reuses it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from . import embedded
from .app import create_app
from .auth import Keys
from .config import NodeConfig, parse
from .db import create_pool, migrate
from .generator import Options, generate
from .importer import import_file
from .runtime import Runtime, open_runtime
from .tiers.identity import generate_key_pair
from .tiers.node import Node
from .tiers.store import has_persons, load_tree
from .tiers.tree import Tree

PROVINCE_NODES = (("guangdong", "440000", "广东省"), ("sichuan", "510000", "四川省"), ("zhejiang", "330000", "浙江省"))
ORDER = ("pools", "employers", "persons", "contributions", "benefits")


@dataclass
class DemoNode:
    cfg: NodeConfig
    url: str


def node_keys(data_dir: Path, names: list[str]) -> Path:
    """A key pair per demo node (its identity for changes across nodes), made once."""
    keys = data_dir / "node-keys"
    keys.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (keys / f"{n}.key").exists():
            generate_key_pair(keys / f"{n}.key", keys / f"{n}.pub")
    return keys


def configs(port: int, secret: str, data_dir: Path) -> list[NodeConfig]:
    auth = {"jwt_secret": secret}
    keys = node_keys(data_dir, ["central", *(name for name, _, _ in PROVINCE_NODES)])
    central_url = f"http://127.0.0.1:{port}/graphql"
    provinces = [
        parse({"node": {"name": name, "region": region, "listen": f"127.0.0.1:{port + i + 1}",
                        "data_dir": str(data_dir), "private_key_file": str(keys / f"{name}.key")}, "auth": auth,
               "parent": {"name": "central", "url": central_url, "public_key_file": str(keys / "central.pub")}})
        for i, (name, region, _) in enumerate(PROVINCE_NODES)
    ]
    central = parse({
        "node": {"name": "central", "region": "000000", "listen": f"127.0.0.1:{port}", "data_dir": str(data_dir),
                 "private_key_file": str(keys / "central.key")},
        "auth": auth,
        "children": [{"name": p.name, "region": p.region, "url": f"http://{p.listen}/graphql", "timeout_s": 10,
                      "public_key_file": str(keys / f"{p.name}.pub")}
                     for p in provinces],
    })
    return [central, *provinces]


async def prepare(cfgs: list[NodeConfig], data_dir: Path, persons: int) -> None:
    """Migrate every node's database and load the data set into the ones that are empty."""
    urls = {c.name: embedded.url_for(data_dir, embedded.database_name(c.name)) for c in cfgs}
    empty = []
    for c in cfgs:
        pool = await create_pool(urls[c.name])
        async with pool.acquire() as con:
            await migrate(con)
        if not await has_persons(pool):
            empty.append(c)
        await pool.close()
    if not empty:
        print("demo data found: reusing it")
        return
    central = cfgs[0]
    t0 = time.monotonic()
    pool = await create_pool(urls[central.name])
    tree = Tree(await load_tree(pool))
    await pool.close()
    router = Node(central, tree)
    gen_dir = data_dir / "demo-data"
    print(f"generating {persons} persons over 12 months of 2025 ...", flush=True)
    def node_of(region: str) -> str:
        child = router.child_for(region)
        return child.name if child is not None else central.name

    counts = generate(tree, gen_dir, Options(persons=persons, seed=2025), split=node_of)
    print(f"  generated in {time.monotonic() - t0:.0f} s: "
          + "; ".join(f"{n}: {c['contributions']} contributions" for n, c in counts.items()), flush=True)

    async def load(c: NodeConfig) -> None:
        rt = await open_runtime(c, urls[c.name], check_children=False)
        try:
            for kind in ORDER:
                f = gen_dir / c.name / f"{kind}.csv"
                if f.exists():
                    rep = await import_file(rt.pool, rt.node, kind, f, progress=False)
                    print(f"  {c.name}: {kind} {rep.inserted}", flush=True)
        finally:
            await rt.close()

    await asyncio.gather(*(load(c) for c in empty))
    print(f"demo data loaded in {time.monotonic() - t0:.0f} s", flush=True)


# The budgets the demo starts with, for every province's pension pool: 2026's drafted from
# 2025's accounts and taken through the workflow as far as a real cycle might be in the autumn
# (Guangdong approved, Sichuan reviewed, Zhejiang submitted, the rest drafts); and 2025's, all
# approved, so that the execution panel has a year with actual figures (the demo's records
# are 2025's; those budgets are drafted from its first quarter, annualised).
BUDGET_YEAR = 2026
BUDGET_GROWTH = [{"category": "CONTRIBUTIONS", "percent": "5"}, {"category": "BENEFITS", "percent": "8"},
                 {"category": "FISCAL_SUBSIDY", "percent": "3"}]
APPROVE = ("submitBudget", "reviewBudget", "approveBudget")
BUDGET_STEPS = {"440000": APPROVE, "510000": APPROVE[:2], "330000": APPROVE[:1]}
START_BUDGET = """mutation($in: StartBudgetInput!) { startBudget(input: $in) { state } }"""


async def seed_budgets(cfgs: list[NodeConfig], tree: Tree, keys: Keys) -> None:
    """Draft the provinces' 2026 pension budgets through the API, each on the node holding its
    pool; once (a second start finds them and leaves them)."""
    import httpx

    router = Node(cfgs[0], tree)
    tok = keys.sign("demo-budget", "000000", ["VIEWER", "OPERATOR", "BUDGET_REVIEWER", "BUDGET_APPROVER"], 3600)
    central = f"http://{cfgs[0].listen}/graphql"
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {tok}"}) as http:
        async def ask(url: str, query: str, variables: dict[str, object]) -> dict[str, object]:
            body = (await http.post(url, json={"query": query, "variables": variables})).json()
            if body.get("errors"):
                raise RuntimeError(f"demo budgets: {body['errors'][0].get('message')}")
            return body["data"]  # type: ignore[no-any-return]

        seen = await ask(central, "query($y: Int!) { compiledBudget(region: \"000000\", year: $y, "
                                  "schemes: [PENSION]) { states { notDrafted pools } } }", {"y": BUDGET_YEAR})
        states = seen["compiledBudget"]["states"]  # type: ignore[index]
        if states["notDrafted"] != states["pools"]:
            return

        async def one(province: str) -> None:
            owner = router.child_for(province)
            url = owner.url if owner else central
            pool = f"{province}-PENSION-202401"
            for year, base, steps in ((BUDGET_YEAR, "2025-12", BUDGET_STEPS.get(province, ())),
                                      (BUDGET_YEAR - 1, "2025-03", APPROVE)):
                await ask(url, START_BUDGET, {"in": {"poolId": pool, "year": year, "growth": BUDGET_GROWTH,
                                                     "basePeriod": {"from": "2025-01", "to": base}}})
                for step in steps:
                    await ask(url, f"mutation($p: ID!, $y: Int!) {{ {step}(poolId: $p, year: $y) {{ state }} }}",
                              {"p": pool, "y": year})

        await asyncio.gather(*(one(p) for p in router.provinces()))
    print(f"demo budgets: the provinces' {BUDGET_YEAR - 1} and {BUDGET_YEAR} pension budgets drafted", flush=True)


def _secret(data_dir: Path) -> str:
    f = data_dir / "demo-secret"
    if not f.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        f.write_text(secrets.token_urlsafe(32))
        f.chmod(0o600)
    return f.read_text().strip()


async def run_demo(port: int, persons: int, data_dir: Path) -> None:
    data_dir = data_dir.resolve()
    secret = _secret(data_dir)
    cfgs = configs(port, secret, data_dir)
    print("starting the embedded PostgreSQL ...", flush=True)
    await prepare(cfgs, data_dir, persons)
    runtimes: list[Runtime] = []
    servers = []
    from .cli import stopping_live

    # Provinces first: the central node checks its children answer when it starts.
    for c in reversed(cfgs):
        rt = await open_runtime(c, embedded.url_for(data_dir, embedded.database_name(c.name)),
                                check_children=False)
        runtimes.append(rt)
        servers.append(stopping_live(rt)(uvicorn.Config(create_app(c, rt), host=c.host, port=c.port,
                                                        log_level="warning", access_log=False,
                                                        timeout_graceful_shutdown=c.shutdown_grace_s)))
    # Provinces first, each listening before the central node starts: the central node reads
    # their persons when it starts. The addresses are printed once every node listens.
    tasks: list[asyncio.Task[None]] = []
    for server in servers:
        tasks.append(asyncio.get_running_loop().create_task(server.serve()))
        while not server.started:
            if tasks[-1].done():
                tasks[-1].result()
                raise SystemExit(f"a node stopped while starting: {server.config.host}:{server.config.port}")
            await asyncio.sleep(0.05)
    keys = Keys(cfgs[0].auth)
    day = 86400
    pool = await create_pool(embedded.url_for(data_dir, embedded.database_name(cfgs[0].name)))
    tree = Tree(await load_tree(pool))
    await pool.close()
    await seed_budgets(cfgs, tree, keys)
    tokens = {
        "national (VIEWER, OPERATOR, PII_READER, AUDITOR)": keys.sign("demo-central", "000000",
                                                                     ["VIEWER", "OPERATOR", "PII_READER", "AUDITOR"], day),
        "national viewer (IDs masked)": keys.sign("demo-viewer", "000000", ["VIEWER"], day),
        "Guangdong (VIEWER, OPERATOR)": keys.sign("demo-guangdong", "440000", ["VIEWER", "OPERATOR"], day),
        "Sichuan (VIEWER, OPERATOR)": keys.sign("demo-sichuan", "510000", ["VIEWER", "OPERATOR"], day),
        "Guangdong budget reviewer (VIEWER, BUDGET_REVIEWER)": keys.sign("demo-gd-hrss", "440000",
                                                                         ["VIEWER", "BUDGET_REVIEWER"], day),
        "national finance (VIEWER, BUDGET_APPROVER)": keys.sign("demo-finance", "000000",
                                                                ["VIEWER", "BUDGET_APPROVER"], day),
    }
    print("\ntierfed demo is running (Ctrl-C stops everything)\n")
    for c in cfgs:
        print(f"  {c.name:10} {c.region}  GraphiQL http://{c.listen}/graphql   dashboard http://{c.listen}/dashboard")
    print("\ntokens (valid 24 h; send as 'Authorization: Bearer <token>'):")
    for label, tok in tokens.items():
        print(f"\n  {label}:\n  {tok}")
    first = next(iter(tokens.values()))
    print(f"\ndashboard, signed in: http://{cfgs[0].listen}/dashboard#token={first}\n", flush=True)
    try:
        await asyncio.gather(*tasks)
    finally:
        for rt in runtimes:
            await rt.close()
