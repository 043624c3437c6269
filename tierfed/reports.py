"""The public fund report as a page and as CSV: ``GET /reports/fund?region=..&year=..[&half=1|2]
[&format=html|csv]`` with the same bearer token as /graphql.

Both are rendered from the answer to the ``fundReport`` query, run through the same
execution (scope, federation, errors) as any GraphQL request, so the page and the CSV
show exactly the API's figures. The page is Chinese and prints on A4 (a print stylesheet).
"""

from __future__ import annotations

import csv
import html
import io
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import bearer
from .errors import Code, TierfedError
from .execution import RequestError, format_error, prepare, run
from .http import NO_STORE

QUERY = """query FundReportPage($region: ID!, $year: Int!, $half: Int) {
  fundReport(region: $region, year: $year, half: $half) {
    title year half period { from to } complete missing { code name } region { code name }
    schemes { scheme label insured beneficiaries ownPool note returns pool { id region { code name } }
      account { openingBalance totalIncome totalExpenditure surplus closingBalance monthsOfPayment
                income { category label amount } expenditure { category label amount } } } } }"""

STATUS = {Code.BAD_USER_INPUT.value: 400, Code.UNAUTHENTICATED.value: 401, Code.FORBIDDEN.value: 403,
          Code.QUERY_TOO_COMPLEX.value: 400, Code.CONFLICT.value: 409, Code.DATABASE_UNAVAILABLE.value: 503,
          Code.TIER_UNAVAILABLE.value: 502}  # 502: a node this one asked failed; anything else is this node's: 500
PARAMS = ("region", "year", "half", "format")


class ReportError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body


def _bad(message: str, argument: str) -> ReportError:
    return ReportError(400, {"errors": [{"message": message, "extensions": {
        "code": Code.BAD_USER_INPUT.value, "argument": argument}}]})


def _arguments(request: Request) -> tuple[dict[str, Any], str]:
    q = request.query_params
    unknown = sorted(set(q) - set(PARAMS))
    if unknown:
        raise _bad(f"unknown parameter {unknown[0]!r}: use {', '.join(PARAMS)}", unknown[0])
    fmt = q.get("format", "html")
    if fmt not in ("html", "csv"):
        raise _bad(f"format must be html or csv, got {fmt!r}", "format")
    if not q.get("region"):
        raise _bad("region is missing: pass region=<6-digit code>, e.g. region=440000", "region")
    out: dict[str, Any] = {"region": q["region"]}
    for name in ("year", "half"):
        raw = q.get(name)
        if raw is None or raw == "":
            if name == "year":
                raise _bad("year is missing: pass year=YYYY, e.g. year=2025", "year")
            out[name] = None
            continue
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise _bad(f"{name} must be a whole number, got {raw[:20]!r}", name)
        out[name] = int(raw)
    return out, fmt


async def report_data(request: Request, variables: dict[str, Any]) -> dict[str, Any]:
    """The fundReport answer for the request's token; ReportError with the API's errors."""
    rt = request.app.state.runtime
    try:
        caller = await rt.keys.verify_async(bearer(request.headers.get("authorization")), rt.tree)
    except TierfedError as e:
        raise ReportError(401, {"errors": [format_error(_as_graphql(e))]}) from None
    try:
        prepared = prepare(rt, QUERY, "FundReportPage", variables)
    except RequestError as e:
        raise ReportError(400, {"errors": [format_error(x) for x in e.errors]}) from None
    result = await run(rt, caller, prepared, variables, "FundReportPage")
    errors = [format_error(e) for e in result.errors or ()]
    if not result.data or result.data.get("fundReport") is None:
        code = (errors[0].get("extensions") or {}).get("code") if errors else None
        raise ReportError(STATUS.get(str(code), 500), {"errors": errors})
    data: dict[str, Any] = result.data["fundReport"]
    return data


def _as_graphql(e: TierfedError) -> Any:
    from graphql import GraphQLError

    return GraphQLError(str(e), original_error=e)


async def fund_report_endpoint(request: Request) -> Response:
    try:
        variables, fmt = _arguments(request)
        data = await report_data(request, variables)
    except ReportError as e:
        return JSONResponse(e.body, e.status, headers=NO_STORE)
    name = f"fund-report-{data['region']['code']}-{data['year']}" + (f"-H{data['half']}" if data["half"] else "")
    if fmt == "csv":
        return Response(to_csv(data), 200, {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}.csv"'},
                        "text/csv; charset=utf-8")
    return Response(to_html(data), 200, NO_STORE, "text/html; charset=utf-8")


def routes() -> list[Route]:
    return [Route("/reports/fund", fund_report_endpoint, methods=["GET"])]


# ---------------------------------------------------------------- rendering

def money(v: str | None) -> str:
    """Yuan with thousands separators, two decimals; a dash for none."""
    return "—" if v is None else f"{Decimal(v):,.2f}"


def count(v: int) -> str:
    return f"{v:,}"


def lines(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One scheme's figures as (item, Chinese label, value, css class), in the report's order."""
    out = [("insured", "参保人数（期末，人）", count(s["insured"]), ""),
           ("beneficiaries", "享受待遇人数（期末，人）", count(s["beneficiaries"]), "")]
    a = s["account"]
    if a is None:
        return out
    out.append(("opening_balance", "期初结余", money(a["openingBalance"]), "sum"))
    out += [(f["category"], f["label"], money(f["amount"]), "in") for f in a["income"]]
    out.append(("total_income", "基金收入合计", money(a["totalIncome"]), "sum"))
    out += [(f["category"], f["label"], money(f["amount"]), "out") for f in a["expenditure"]]
    out += [("total_expenditure", "基金支出合计", money(a["totalExpenditure"]), "sum"),
            ("surplus", "本期收支结余", money(a["surplus"]), "sum"),
            ("closing_balance", "期末滚存结余", money(a["closingBalance"]), "sum"),
            ("returns", "其中：利息及投资收益", money(s["returns"]), ""),
            ("months_of_payment", "可支付月数", "—" if a["monthsOfPayment"] is None else a["monthsOfPayment"], "")]
    return out


def period_text(d: dict[str, Any]) -> str:
    return f"{d['period']['from']} 至 {d['period']['to']}"


def to_csv(d: dict[str, Any]) -> str:
    """One row per figure. Every row says whether the report is complete and which regions it
    misses (a child node that did not answer): a file read on its own cannot be taken for the
    whole; the figures of a region missing whole are left empty, not zero."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["region_code", "region_name", "from", "to", "scheme", "scheme_label", "pool", "item", "item_label",
                "value", "complete", "missing"])
    missing = [m["code"] for m in d.get("missing") or []]
    unknown = d["region"]["code"] in missing
    complete = "false" if d.get("complete") is False else "true"
    for s in d["schemes"]:
        pool = s["pool"]["id"] if s["pool"] else ""
        for item, label, value, _ in lines(s):
            w.writerow([d["region"]["code"], d["region"]["name"], d["period"]["from"], d["period"]["to"],
                        s["scheme"], s["label"], pool, item, label, "" if unknown else value.replace(",", ""),
                        complete, " ".join(missing)])
    # A byte order mark: spreadsheet programs in Chinese locales read the file as UTF-8.
    return "\ufeff" + buf.getvalue()


STYLE = """
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", sans-serif; margin: 2em auto;
       max-width: 60em; color: #111; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
.meta { color: #444; margin-top: 0; }
.incomplete { border: 1px solid #b00; color: #b00; padding: .4em .6em; }
section.scheme { margin: 1.5em 0; break-inside: avoid; page-break-inside: avoid; }
section.scheme h2 { font-size: 1.15em; border-bottom: 2px solid #333; padding-bottom: .2em; }
.note { color: #333; font-size: .92em; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .18em .5em; border-bottom: 1px solid #ddd; text-align: left; font-weight: normal; }
td.v { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sum th, tr.sum td { font-weight: bold; }
tr.in th, tr.out th { padding-left: 1.5em; }
footer { margin-top: 2em; font-size: .85em; color: #555; }
@page { size: A4; margin: 16mm 14mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .noprint { display: none; }
  section.scheme { margin: .8em 0; }
}
"""


def to_html(d: dict[str, Any]) -> str:
    e = html.escape
    parts = [f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{e(d["title"])}</title>'
             f"<style>{STYLE}</style></head><body>",
             f'<h1>{e(d["title"])}</h1>',
             f'<p class="meta">统计区域：{e(d["region"]["name"])}（{e(d["region"]["code"])}）　'
             f"统计期间：{e(period_text(d))}　金额单位：元</p>",
             '<p class="noprint"><button onclick="window.print()">打印</button></p>']
    if not d["complete"]:
        names = "、".join(f'{m["name"]}（{m["code"]}）' for m in d["missing"])
        parts.append(f'<p class="incomplete">数据不完整：以下地区的节点未应答，其数据未计入：{e(names)}</p>')
    for s in d["schemes"]:
        parts.append(f'<section class="scheme" data-scheme="{e(s["scheme"])}"><h2>{e(s["label"])}</h2>')
        pool = f'（基金 {e(s["pool"]["id"])}）' if s["pool"] and s["ownPool"] else ""
        parts.append(f'<p class="note">{e(s["note"])}{pool}</p><table>')
        for item, label, value, cls in lines(s):
            parts.append(f'<tr class="{cls}" data-item="{e(item)}"><th>{e(label)}</th><td class="v">{e(value)}</td></tr>')
        parts.append("</table></section>")
    parts.append("<footer>依据《中华人民共和国社会保险法》第七十条向社会公布。数据来自 tierfed 联邦节点。</footer>"
                 "</body></html>")
    return "".join(parts)
