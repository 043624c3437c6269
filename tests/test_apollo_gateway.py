"""A tierfed node as an Apollo Federation v2 subgraph, checked with Apollo's own tools.

A real national node (uvicorn on a loopback port) is composed, with ``@apollo/composition``,
with a second department's subgraph built with ``@apollo/subgraph`` (healthcare security:
``Region.medicalInsuranceCatalogue``, plus root fields that name agencies, pools and regions
by key only). ``@apollo/gateway`` on ``@apollo/server`` then serves the supergraph and
forwards the client's ``Authorization`` header to the subgraphs. One query through the
gateway needs both subgraphs and tierfed's batched ``_entities`` for ``Region``, ``Agency``
and ``Pool``; its answer must equal tierfed's own answer plus the second subgraph's field.

The npm pieces live in ``tests/gateway/`` (``package.json`` and its lock). When its
``node_modules`` is missing the test runs ``npm ci`` there; it skips only when node/npm are
missing or the install fails for want of network.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import node_config, token
from tests.nodes import free_port, start_node

pytestmark = [pytest.mark.federation, pytest.mark.timeout(600)]

GATEWAY_DIR = Path(__file__).parent / "gateway"
PACKAGES = ("@apollo/composition", "@apollo/gateway", "@apollo/server", "@apollo/subgraph", "graphql")
NPM_TIMEOUT_S = 300
NETWORK_ERRORS = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"getaddrinfo|network|socket hang up|request to https?://\S+ failed", re.IGNORECASE)
AS_OF = "2025-06"


def catalogue_for(code: str) -> str:
    """Mirror of ``catalogueFor`` in tests/gateway/healthcare.mjs."""
    return "NRDL-2025" if code == "000000" else f"NRDL-2025/{code[:2]}0000"


# --- npm --------------------------------------------------------------------------------

def _modules_installed() -> bool:
    nm = GATEWAY_DIR / "node_modules"
    return (nm / ".package-lock.json").is_file() and all((nm / p / "package.json").is_file() for p in PACKAGES)


@pytest.fixture(scope="session")
def gateway_modules() -> str:
    """The path of ``node``, once tests/gateway/node_modules is installed from the lock file."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the Apollo gateway test and are not on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        pytest.skip(f"the Apollo gateway test needs Node 20 or later, found {version}")
    if _modules_installed():
        return node
    try:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=GATEWAY_DIR,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm ci in tests/gateway did not finish within {NPM_TIMEOUT_S} s (no network?)")
    if done.returncode != 0:
        out = done.stdout + done.stderr
        if NETWORK_ERRORS.search(out):
            pytest.skip("npm ci in tests/gateway failed: the npm registry is not reachable")
        pytest.fail(f"npm ci in tests/gateway failed:\n{out[-4000:]}")
    assert _modules_installed(), "npm ci succeeded but tests/gateway/node_modules is incomplete"
    return node


# --- node processes ---------------------------------------------------------------------

class NodeProcess:
    """A node script on a loopback port; its output goes to a log file."""

    def __init__(self, node: str, script: str, args: list[str], log: Path) -> None:
        self.log = log
        self.out = log.open("wb")
        self.proc = subprocess.Popen([node, script, *args], cwd=GATEWAY_DIR, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r"^ready ", self.output(), re.MULTILINE):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.proc.args[1]} exited with {self.proc.returncode}:\n{self.output()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.proc.args[1]} was not ready within {timeout} s:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        finally:
            self.out.close()


async def _compose(node: str, services: list[dict[str, str]]) -> dict[str, Any]:
    done = await asyncio.to_thread(
        subprocess.run, [node, "compose.mjs"], cwd=GATEWAY_DIR, input=json.dumps(services),
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"compose.mjs failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def _post(http: httpx.AsyncClient, url: str, query: str, tok: str | None,
                variables: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    r = await http.post(url, json={"query": query, "variables": variables or {}}, headers=headers)
    return r.json()  # type: ignore[no-any-return]


async def _data(http: httpx.AsyncClient, url: str, query: str, tok: str | None) -> Any:
    body = await _post(http, url, query, tok)
    assert not body.get("errors"), body["errors"]
    return body["data"]


# --- the queries ------------------------------------------------------------------------

GATEWAY_QUERY = """
query HealthcareOverview {
  region(code: "440000") {
    code name tier medicalInsuranceCatalogue
    children { code name medicalInsuranceCatalogue }
  }
  designatedAgencies {
    code name department kind verticallyManaged
    region { code name medicalInsuranceCatalogue }
  }
  medicalPools {
    id scheme level openedFrom closedAfter balance(asOf: "%s")
    region { code name medicalInsuranceCatalogue }
  }
  directSettlementPilots {
    code name tier medicalInsuranceCatalogue
    parent { code name }
  }
}
""" % AS_OF


def _tierfed_query(agencies: list[str], pools: list[str], regions: list[str]) -> str:
    """The same selections asked of tierfed alone (no catalogue), one alias per entity."""
    parts = ['region(code: "440000") { code name tier children { code name } }']
    parts += [f'a{i}: agency(code: "{c}") {{ code name department kind verticallyManaged region {{ code name }} }}'
              for i, c in enumerate(agencies)]
    parts += [f'p{i}: pool(id: "{p}") {{ id scheme level openedFrom closedAfter balance(asOf: "{AS_OF}") '
              f'region {{ code name }} }}' for i, p in enumerate(pools)]
    parts += [f'r{i}: region(code: "{c}") {{ code name tier parent {{ code name }} }}' for i, c in enumerate(regions)]
    return "{ " + "\n".join(parts) + " }"


def _with_catalogue(region: dict[str, Any]) -> dict[str, Any]:
    return {**region, "medicalInsuranceCatalogue": catalogue_for(region["code"])}


def _expected(own: dict[str, Any], agencies: list[str], pools: list[str], regions: list[str]) -> dict[str, Any]:
    """tierfed's own answer, reshaped to the gateway query, plus the healthcare subgraph's field."""
    gd = own["region"]
    return {
        "region": {**_with_catalogue({k: gd[k] for k in ("code", "name", "tier")}),
                   "children": [_with_catalogue(c) for c in gd["children"]]},
        "designatedAgencies": [{**own[f"a{i}"], "region": _with_catalogue(own[f"a{i}"]["region"])}
                               for i in range(len(agencies))],
        "medicalPools": [{**own[f"p{i}"], "region": _with_catalogue(own[f"p{i}"]["region"])}
                         for i in range(len(pools))],
        "directSettlementPilots": [{**_with_catalogue({k: own[f"r{i}"][k] for k in ("code", "name", "tier")}),
                                    "parent": own[f"r{i}"]["parent"]} for i in range(len(regions))],
    }


def _entity_fetches(log: Path, subgraph: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["subgraph"] == subgraph and "_entities" in r["query"]]


# --- the test ---------------------------------------------------------------------------

async def test_gateway_composes_and_queries_tierfed_with_a_healthcare_subgraph(
        gateway_modules: str, loaded_db: str, tmp_path: Path) -> None:
    node = gateway_modules
    national = token("000000", ("VIEWER",))
    tierfed = await start_node(node_config(), loaded_db)
    procs: list[NodeProcess] = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            # 1. A real tierfed node (above) and the healthcare subgraph. The data the
            # healthcare subgraph names by key, read from tierfed: healthcare
            # agencies in Guangdong and Beijing, medical pools at city and province level,
            # and pilot regions at three tiers.
            src = await _data(http, tierfed.url, f"""{{
              gd: region(code: "440000") {{ agencies(department: HEALTHCARE_SECURITY) {{ code }}
                children {{ code agencies(department: HEALTHCARE_SECURITY) {{ code }}
                            pool(scheme: MEDICAL, asOf: "{AS_OF}") {{ id }} children {{ code }} }} }}
              bj: region(code: "110000") {{ agencies(department: HEALTHCARE_SECURITY) {{ code }}
                pool(scheme: MEDICAL, asOf: "{AS_OF}") {{ id }} }} }}""", national)
            sz = next(c for c in src["gd"]["children"] if c["code"] == "440300")
            agencies = [a["code"] for a in src["bj"]["agencies"] + src["gd"]["agencies"] + sz["agencies"]]
            pools = [p["id"] for p in (sz["pool"], src["bj"]["pool"]) if p]
            pilots = ["440300", sz["children"][0]["code"], "310000"]
            assert len(agencies) >= 3 and len(pools) == 2, src
            fixture = tmp_path / "healthcare-fixture.json"
            fixture.write_text(json.dumps({"designatedAgencies": agencies, "medicalPools": pools,
                                           "directSettlementPilots": pilots}))

            hc_port, gw_port = free_port(), free_port()
            healthcare = NodeProcess(node, "healthcare.mjs", [str(hc_port), str(fixture)], tmp_path / "healthcare.log")
            procs.append(healthcare)
            await healthcare.ready()
            hc_url = f"http://127.0.0.1:{hc_port}/"

            # tierfed's _entities on its own: one batch of mixed types keeps the order of the
            # representations and gives null for a well-formed key that names nothing.
            reps = [{"__typename": "Pool", "id": pools[0]}, {"__typename": "Region", "code": "440300"},
                    {"__typename": "Agency", "code": agencies[0]}, {"__typename": "Region", "code": "449999"},
                    {"__typename": "Region", "code": "110000"}]
            body = await _post(http, tierfed.url, """query($r: [_Any!]!) { _entities(representations: $r) {
                __typename ... on Region { code name } ... on Agency { code name }
                ... on Pool { id scheme region { code } } } }""", national, {"r": reps})
            assert not body.get("errors"), body["errors"]
            one = await _data(http, tierfed.url, f"""{{ p: pool(id: "{pools[0]}") {{ id scheme region {{ code }} }}
                r: region(code: "440300") {{ code name }} a: agency(code: "{agencies[0]}") {{ code name }}
                b: region(code: "110000") {{ code name }} }}""", national)
            assert body["data"]["_entities"] == [
                {"__typename": "Pool", **one["p"]}, {"__typename": "Region", **one["r"]},
                {"__typename": "Agency", **one["a"]}, None, {"__typename": "Region", **one["b"]}]

            # 2. @apollo/composition over the two subgraphs' own SDLs, read from _service.
            tierfed_sdl = (await _data(http, tierfed.url, "{ _service { sdl } }", national))["_service"]["sdl"]
            hc_sdl = (await _data(http, hc_url, "{ _service { sdl } }", None))["_service"]["sdl"]
            composed = await _compose(node, [{"name": "tierfed", "url": tierfed.url, "sdl": tierfed_sdl},
                                             {"name": "healthcare", "url": hc_url, "sdl": hc_sdl}])
            assert composed["errors"] == [], composed["errors"]
            supergraph = composed["supergraphSdl"]
            assert supergraph and "medicalInsuranceCatalogue" in supergraph
            for entity in ("Region", "Agency"):
                assert re.search(rf'type {entity}\s[^{{]*@join__type\(graph: TIERFED, key: "code"\)', supergraph)
            assert re.search(r'type Pool\s[^{]*@join__type\(graph: TIERFED, key: "id"\)', supergraph)
            (tmp_path / "supergraph.graphql").write_text(supergraph)

            # 3. @apollo/gateway over the supergraph, forwarding the client's Authorization
            # header; one query that needs both subgraphs equals tierfed's own answer plus
            # the healthcare field.
            requests_log = tmp_path / "subgraph-requests.jsonl"
            requests_log.touch()
            gateway = NodeProcess(node, "gateway.mjs", [str(gw_port), str(tmp_path / "supergraph.graphql"),
                                                        str(requests_log)], tmp_path / "gateway.log")
            procs.append(gateway)
            await gateway.ready()
            gw_url = f"http://127.0.0.1:{gw_port}/"

            got = await _post(http, gw_url, GATEWAY_QUERY, national)
            assert not got.get("errors"), got["errors"]
            own = await _data(http, tierfed.url, _tierfed_query(agencies, pools, pilots), national)
            want = _expected(own, agencies, pools, pilots)
            assert got["data"] == want
            assert len(want["region"]["children"]) == 21
            assert all(p["balance"] for p in want["medicalPools"])

            # tierfed resolved Agency, Pool and Region through _entities, one batched fetch
            # per type, with the client's token; healthcare resolved Region the same way.
            fetches = _entity_fetches(requests_log, "tierfed")
            by_type: dict[str, list[list[str]]] = {}
            for f in fetches:
                assert f["authorization"] == f"Bearer {national}"
                reps = f["variables"]["representations"]
                for t in {r["__typename"] for r in reps}:
                    by_type.setdefault(t, []).append([r.get("code") or r.get("id") for r in reps
                                                      if r["__typename"] == t])
            assert by_type.get("Agency") == [agencies], by_type
            assert by_type.get("Pool") == [pools], by_type
            assert by_type.get("Region") == [pilots], by_type
            assert _entity_fetches(requests_log, "healthcare"), "no Region fetch from the healthcare subgraph"

            # Scope is enforced by tierfed on the forwarded token: a Guangdong token reads
            # Shenzhen's pool through the gateway but not Beijing's, and no token reads nothing.
            gd_tok = token("440000", ("VIEWER",))
            scoped = await _post(http, gw_url, "{ medicalPools { id balance } }", gd_tok)
            denied = [(e.get("path"), (e.get("extensions") or {}).get("code")) for e in scoped.get("errors") or []]
            assert pools[1].startswith("110000") and denied == [(["medicalPools", 1], "FORBIDDEN")], scoped
            anonymous = await _post(http, gw_url, '{ region(code: "440000") { name } }', None)
            assert not (anonymous.get("data") or {}).get("region"), anonymous
            assert [(e.get("extensions") or {}).get("code") for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
    finally:
        for p in procs:
            p.kill()
        await tierfed.stop()
