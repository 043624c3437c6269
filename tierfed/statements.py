"""``tierfed statements``: every person registered in a region gets their year's statement as a
PDF in Chinese (Social Insurance Law art. 74), one file each, or one file per county for a print
shop.

The figures are the API's: each batch of persons is one GraphQL operation run through this
node's own execution path (``execution.prepare`` and ``run``), so the months a person has on
child nodes are in it exactly as ``person { statement }`` answers them. Persons come from the
``registered`` internal call (``tiers.registered``), in ID number order, across the federation.

All or nothing, per file: a file is written under a temporary name in the output folder,
flushed to disk, and renamed into place; only then are its persons recorded in
``statement_sent`` (id, year, delivery). A rerun after an interruption (even kill -9) skips the
persons recorded and writes the rest; a file renamed but not yet recorded is written again under
the same name, never twice. Leftover temporary files of a killed run are removed at the start.
A statement whose parts a child node did not give (``complete: false``) is not written: the
run says which and ends with status 1, and a rerun tries those persons again.

Bad input is refused before anything is written: a malformed year, an unknown region or one
outside this node's subtree, a region with no persons, an output folder that cannot be written.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from . import codes
from .auth import Caller, Keys
from .errors import UserError
from .statement_pdf import Font, FontCut, find_font, render, texts_of
from .tiers.faults import crash_point
from .tiers.person_store import RECORD_STATEMENTS_SENT, STATEMENTS_SENT
from .tiers.tree import NATION

BATCH = 20  # persons per GraphQL operation: the default [limits].max_root_fields
LIST_PAGE = 5000
TMP_PREFIX = ".tierfed-statement-"
FRAGMENT = """fragment S on Person { idNumber name complete region { code name }
  statement(year: $year) { year complete schemes { scheme months contributionEmployer contributionIndividual
    individualAccount benefitsPaid } }
  transfers { effectiveFrom from { name } to { name } schemes { scheme individualAccount pooledFund } } }"""


@dataclass
class Report:
    persons: int = 0
    written: int = 0
    skipped: int = 0  # recorded as sent by an earlier run
    files: int = 0
    incomplete: list[str] = field(default_factory=list)  # masked ID numbers
    seconds: float = 0.0
    read_s: float = 0.0  # in the API's statements (bench/statements.py splits the time)
    render_s: float = 0.0  # in cutting fonts and making PDFs


def year_arg(text: str) -> int:
    if not re.fullmatch(r"[0-9]{4}", text or ""):  # ASCII digits (\d takes full-width ones)
        raise UserError(f"--year {text!r} is malformed: expected a four-digit year such as 2025")
    year = int(text)
    if not 1990 <= year <= date.today().year:
        raise UserError(f"--year {year} is out of range: expected 1990 to {date.today().year}")
    if year == date.today().year:
        # A statement is of a whole year, and a person sent one is not sent it again: the year's
        # months still to come would never reach them.
        raise UserError(f"--year {year} has not ended: statements of {year} can be sent from January "
                        f"{year + 1}; the latest year they can be sent for is {year - 1}")
    return year


def check_out(out: str) -> Path:
    """The output folder must be a folder (or creatable as one) that this process can write:
    probed with a real file, removed at once (a root process ignores permission bits)."""
    p = Path(out).absolute()
    probe_in = p
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise UserError(f"--out {out}: {probe_in} is not a folder: name a folder for the statements")
    try:
        fd, name = _mkstemp(probe_in)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write in {probe_in} ({e.strerror or e}): "
                        "name a folder you may write to") from None
    return p


def _mkstemp(folder: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)


def file_name(id_number: str, region: str, year: int, keys: Keys) -> str:
    """No full ID number in a file name: the masked one, and a digest to tell two apart, keyed by
    the node's signing key (an unkeyed digest of the ID number gave it away: the masked number
    hides only the birth date, whose ~45,000 candidates a digest of each picks out at once)."""
    digest = keys.keyed_digest("statement file name", id_number)
    if digest is None:
        raise UserError("this node cannot sign ([auth] has no secret or private key): it cannot name statements")
    return f"{year}-{region}-{codes.mask_id(id_number).replace('*', 'x')}-{digest[:16]}.pdf"


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name beside ``path``, flush it to disk, rename it into place."""
    fd, tmp = _mkstemp(path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crash_point("statements-before-rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Progress:
    """A progress bar on stderr (tqdm), off when asked."""

    def __init__(self, total: int, shown: bool) -> None:
        self.bar = None
        if shown:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="statement", file=sys.stderr, desc="statements",
                            dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_statements(rt: Any, region: str, year: int, out: Path, per_county: bool,
                         progress: bool = True, font: Font | None = None, cut_font: bool = True) -> Report:
    """``cut_font=False`` embeds from the whole CJK font for every file (bench/statements.py's baseline)."""
    from .execution import RequestError, prepare, run
    from .tiers.registered import registered
    from .tiers.remote import LIVE, RemoteCalls

    started = time.perf_counter()
    tree = rt.tree
    try:
        codes.region_code(region)
    except ValueError as e:
        raise UserError(f"--region: {e}") from None
    if region not in tree:
        raise UserError(f"--region {region} names no region of the division list")
    if not rt.node.in_subtree(region):
        raise UserError(f"--region {region} is outside this node's subtree {rt.node.region}: "
                        "run the command with the config of a node that holds it")
    font = font or find_font()

    def token(child: str | None = None) -> str:
        tok = rt.index.node_token(child)
        if tok is None:
            raise UserError("this node cannot sign node tokens ([auth] has no secret or private key): "
                            "it cannot ask its children for the statements")
        return str(tok)

    # Who: every person registered in the region, across the federation, in ID number order.
    persons: list[tuple[str, str]] = []
    after = ""
    while True:
        remote = RemoteCalls(rt.clients, lambda child: token(child), {}, {}, LIVE)
        page, failed, _ = await registered(rt.node, rt.pool, remote, region, after, LIST_PAGE)
        if failed:
            raise UserError(f"the nodes of {', '.join(failed)} did not say who is registered there: "
                            "nothing was written; run again when they answer")
        persons.extend((i, r) for i, r in page)
        if len(page) < LIST_PAGE:
            break
        after = page[-1][0]
    if not persons:
        raise UserError(f"no person is registered in region {region} ({tree.by_code[region].name}): "
                        "nothing to send")
    out = check_out(str(out))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # the files are 0600; a new folder lists them to no one
    for leftover in out.glob(TMP_PREFIX + "*"):  # a killed run's half-written file
        leftover.unlink(missing_ok=True)

    delivery = "county" if per_county else "person"
    sent = {r["id_number"] for r in await rt.pool.fetch(STATEMENTS_SENT, year, delivery)}
    report = Report(persons=len(persons))
    caller = Caller(f"statements:{rt.cfg.name}", rt.node.region, frozenset({"VIEWER"}), token())
    issuer = ("人力资源和社会保障部社会保险事业管理中心" if rt.node.region == NATION
              else f"{full_name(tree, rt.node.region)}社会保险经办机构")
    today = date.today().isoformat()
    cut = FontCut(font, issuer + today)
    bar = Progress(len(persons), progress)

    async def fetch(ids: list[str]) -> list[dict[str, Any]]:
        """The API's answers for these persons (one operation), refreshing the node token."""
        nonlocal caller
        t0 = time.perf_counter()
        caller = Caller(caller.sub, caller.scope, caller.roles, token())
        defs = ", ".join(f"$i{n}: String!" for n in range(len(ids)))
        body = " ".join(f"p{n}: person(idNumber: $i{n}) {{ ...S }}" for n in range(len(ids)))
        query = f"query Statements($year: Int!, {defs}) {{ {body} }}\n{FRAGMENT}"
        variables: dict[str, Any] = {"year": year, **{f"i{n}": i for n, i in enumerate(ids)}}
        try:
            prepared = prepare(rt, query, "Statements", variables)
        except RequestError as e:
            raise UserError(f"the statement query was refused: {e.errors[0].message}") from None
        result = await run(rt, caller, prepared, variables, "Statements")
        data = result.data or {}
        errs = [e for e in (result.errors or []) if (e.extensions or {}).get("code") != "TIER_UNAVAILABLE"]
        if errs:
            raise UserError(f"the statements could not be read: {errs[0].message}")
        got = [{"person": data.get(f"p{n}")} for n in range(len(ids))]
        for st in got:
            p = st["person"]
            if p is not None:  # the full place name from the division tree: 广东省广州市天河区
                p["region"]["name"] = full_name(tree, p["region"]["code"])
        report.read_s += time.perf_counter() - t0
        return got

    def cut_for(texts: Any) -> tuple[str, int]:
        t0 = time.perf_counter()
        made = (cut.cut(texts), 0) if cut_font else (font.path, font.number)
        report.render_s += time.perf_counter() - t0
        return made

    def pdf(sts: list[dict[str, Any]], made: tuple[str, int]) -> bytes:
        t0 = time.perf_counter()
        data = render(sts, year, issuer, today, made[0], made[1])
        report.render_s += time.perf_counter() - t0
        return data

    def whole(st: dict[str, Any], idn: str) -> bool:
        p = st["person"]
        if p is None or not p["complete"] or not p["statement"]["complete"]:
            report.incomplete.append(codes.mask_id(idn))
            return False
        return True

    try:
        if per_county:
            groups: dict[str, list[str]] = {}
            for idn, reg in persons:
                groups.setdefault(reg, []).append(idn)
            for reg, ids in sorted(groups.items()):
                if all(i in sent for i in ids):
                    report.skipped += len(ids)
                    bar.update(len(ids))
                    continue
                got: list[dict[str, Any]] = []
                for k in range(0, len(ids), BATCH):
                    got.extend(await fetch(ids[k:k + BATCH]))
                    bar.update(len(ids[k:k + BATCH]))
                ok = [(i, s) for i, s in zip(ids, got) if whole(s, i)]
                if len(ok) < len(ids):
                    continue  # a county file is whole or not written
                made = cut_for(t for _, s in ok for t in texts_of(s))
                name = f"{year}-{reg}.pdf"
                _write(out / name, pdf([s for _, s in ok], made))
                await _record(rt, [(i, reg) for i, _ in ok], year, delivery, name)
                report.written += len(ok)
                report.files += 1
        else:
            todo = [(i, r) for i, r in persons if i not in sent]
            report.skipped = len(persons) - len(todo)
            bar.update(report.skipped)
            for k in range(0, len(todo), BATCH * 10):
                chunk = todo[k:k + BATCH * 10]
                got = []
                for j in range(0, len(chunk), BATCH):
                    got.extend(await fetch([i for i, _ in chunk[j:j + BATCH]]))
                whole_ones = [(i, r, s) for (i, r), s in zip(chunk, got) if whole(s, i)]
                made = cut_for(t for _, _, s in whole_ones for t in texts_of(s)) if whole_ones else ("", 0)
                for idn, reg, st in whole_ones:
                    name = file_name(idn, reg, year, rt.keys)
                    _write(out / name, pdf([st], made))
                    await _record(rt, [(idn, reg)], year, delivery, name)
                    report.written += 1
                    report.files += 1
                    bar.update(1)
                bar.update(len(chunk) - len(whole_ones))
    finally:
        bar.close()
        cut.close()
    report.seconds = time.perf_counter() - started
    return report


def full_name(tree: Any, code: str) -> str:
    r = tree.by_code.get(code)
    if r is None:
        return code
    names = [tree.by_code[a].name for a in r.ancestors if a in tree.by_code and tree.by_code[a].tier > 0]
    return "".join([*names, r.name])


async def _record(rt: Any, persons: list[tuple[str, str]], year: int, delivery: str, name: str) -> None:
    crash_point("statements-before-record")
    async with rt.pool.acquire() as con, con.transaction():
        await con.executemany(RECORD_STATEMENTS_SENT, [(i, year, delivery, r, name) for i, r in persons])
