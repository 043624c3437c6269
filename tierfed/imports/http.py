"""Imports over HTTP: ``POST /imports/{kind}`` with the file as the body (plain or
gzip, streamed to a spool file up to ``[limits].max_import_bytes``), answered with
the import's report; ``GET /imports/jobs/{id}`` follows a running import.

With ``Prefer: respond-async`` the POST answers 202 with the job as soon as the
file is received, and the job carries the report when the import ends.
Needs OPERATOR; the records must lie inside the token's scope. A token whose
scope is held by a child node is sent there (421, with the child's address).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tierfed.auth import Caller, bearer
from tierfed.errors import Code, TierfedError, UserError
from tierfed.runtime import Runtime

from . import store
from .federation import after_import
from .report import ImportFailed, Progress, Report
from .run import KINDS, import_file

log = logging.getLogger("tierfed.imports")
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# The whole directory is every node's: only a national token may change it.
DIRECTORY = ("regions", "agencies")
KEEP_FINISHED = 200
HEARTBEAT_S = 0.5  # how often a running job's progress is written for the other workers
STALE_S = 30.0  # a running job not written for this long was left by a worker that stopped
STOPPED = "the node stopped during the import; nothing was imported (its transaction was rolled back): submit the file again"


@dataclass
class Job:
    id: str
    kind: str
    file_name: str
    caller: str
    scope: str
    progress: Progress = field(default_factory=Progress)
    state: str = "running"  # running | imported | unchanged | rejected | failed
    report: Report | None = None
    error: str | None = None
    task: asyncio.Task[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "file_name": self.file_name, "state": self.state,
                "progress": self.progress.to_json(), "error": self.error,
                "report": self.report.to_json() if self.report else None}


class Jobs:
    """The imports this worker is running or has finished lately, in memory, and every job of
    the node in its database (``import_job``), written as it runs: any worker answers for any
    job (the history table, import_run, keeps every import for good)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    async def new(self, rt: Runtime, kind: str, name: str, caller: Caller) -> Job:
        job = Job(uuid.uuid4().hex[:20], kind, name, caller.sub, caller.scope)
        async with rt.pool.acquire() as con, con.transaction():
            await con.execute(store.JOB_NEW, job.id, kind, name, caller.sub, caller.scope,
                              json.dumps(job.progress.to_json()))
            await con.execute(store.JOB_PRUNE, KEEP_FINISHED)
        self.jobs[job.id] = job
        finished = [j for j in self.jobs.values() if j.state != "running"]
        for j in finished[:-KEEP_FINISHED]:
            del self.jobs[j.id]
        return job

    async def stop(self) -> None:
        """The node is stopping: the imports still running are stopped (an import not committed
        yet is rolled back, and its job says so; one committed already says it is imported)."""
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    @staticmethod
    async def written(rt: Runtime, job: Job) -> None:
        """Where the job stands, for the other workers: while it runs, every HEARTBEAT_S; then its end."""
        if job.state == "running":
            await rt.pool.execute(store.JOB_PROGRESS, job.id, json.dumps(job.progress.to_json()))
        else:
            await rt.pool.execute(store.JOB_END, job.id, job.state, json.dumps(job.progress.to_json()), job.error,
                                  json.dumps(job.report.to_json()) if job.report else None)

    @staticmethod
    async def stored(rt: Runtime, job_id: str) -> dict[str, Any] | None:
        """A job as the node's database has it (run by any worker), or None."""
        row = await rt.pool.fetchrow(store.JOB, job_id)
        if row is None:
            return None
        out = {k: row[k] for k in ("id", "kind", "file_name", "state", "error")}
        out["progress"] = json.loads(row["progress"])
        out["report"] = json.loads(row["report"]) if row["report"] is not None else None
        out["scope"] = row["scope"]
        if out["state"] == "running" and row["idle_s"] > STALE_S:
            # The worker running it stopped (its import's transaction rolled back with it).
            out["state"] = "failed"
            out["error"] = STOPPED
        return out


def _jobs(request: Request) -> Jobs:
    jobs = getattr(request.app.state, "import_jobs", None)
    if jobs is None:
        jobs = request.app.state.import_jobs = Jobs()
    return jobs  # type: ignore[no-any-return]


def _error(code: Code, message: str, status: int, **extra: Any) -> JSONResponse:
    headers = {**NO_STORE, **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse({"error": {"code": code.value, "message": message, **extra}}, status, headers=headers)


async def _caller(request: Request, rt: Runtime, roles: tuple[str, ...]) -> Caller:
    caller = await rt.keys.verify_async(bearer(request.headers.get("authorization")), rt.tree)
    if not any(caller.has(r) for r in roles):
        raise TierfedError(Code.FORBIDDEN, f"imports need the {' or '.join(roles)} role; "
                                           f"your token has {sorted(caller.roles) or 'none'}")
    return caller


async def submit(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    kind = request.path_params["kind"]
    try:
        caller = await _caller(request, rt, ("OPERATOR",))
    except TierfedError as e:
        return _error(e.code, e.message, 401 if e.code == Code.UNAUTHENTICATED else 403)
    if kind not in KINDS:
        return _error(Code.BAD_USER_INPUT, f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}", 404)
    refused = _misdirected(rt, caller, kind)
    if refused is not None:
        return refused
    name = request.query_params.get("name") or f"{kind}.csv"
    if len(name) > 255 or any(c in name for c in "/\\\x00"):
        return _error(Code.BAD_USER_INPUT, "name must be a plain file name of at most 255 characters", 400)
    limit = rt.cfg.limits.max_import_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _error(Code.BAD_USER_INPUT, f"file is larger than this node's limit of {limit} bytes "
                                           "([limits].max_import_bytes)", 413)
    spool = await _spool(request, limit)
    if isinstance(spool, Response):
        return spool
    path, sha256 = spool
    try:
        job = await _jobs(request).new(rt, kind, name, caller)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job.task = asyncio.get_running_loop().create_task(_run(rt, job, path, sha256))
    if "respond-async" in request.headers.get("prefer", ""):
        return JSONResponse(job.to_json(), 202, headers={**NO_STORE, "Location": f"/imports/jobs/{job.id}",
                                                         "Preference-Applied": "respond-async"})
    await asyncio.shield(job.task)
    status = {"imported": 200, "unchanged": 200, "rejected": 422}.get(job.state, 500)
    return JSONResponse(job.to_json(), status, headers={**NO_STORE, "Location": f"/imports/jobs/{job.id}"})


def _misdirected(rt: Runtime, caller: Caller, kind: str) -> Response | None:
    node, scope = rt.node, caller.scope
    if kind in DIRECTORY and scope != "000000":
        return _error(Code.FORBIDDEN, f"{kind} are the whole directory: importing them needs a national token "
                                      f"(scope 000000); yours is {scope}", 403)
    child = node.child_for(scope)
    if child is not None:
        url = child.url.rsplit("/", 1)[0] + f"/imports/{kind}"
        return _error(Code.BAD_USER_INPUT, f"region {scope} of your token's scope is held by child node "
                                           f"'{child.name}': submit the file to {url}", 421,
                      nodes=[{"name": child.name, "region": child.region, "url": url}])
    if not (node.in_subtree(scope) or rt.tree.within(node.region, scope)):
        return _error(Code.FORBIDDEN, f"your token's scope {scope} is outside this node's subtree {node.region}", 403)
    return None


async def _spool(request: Request, limit: int) -> tuple[Path, str] | Response:
    """The body to a temporary file, hashed on the way; never more than one chunk in memory."""
    fd, name = tempfile.mkstemp(prefix="tierfed-import-", suffix=".upload")
    path = Path(name)
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    path.unlink(missing_ok=True)
                    return _error(Code.BAD_USER_INPUT, f"file is larger than this node's limit of {limit} bytes "
                                                       "([limits].max_import_bytes)", 413)
                h.update(chunk)
                f.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, h.hexdigest()


async def _run(rt: Runtime, job: Job, path: Path, sha256: str) -> None:
    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await Jobs.written(rt, job)
            except Exception:  # noqa: BLE001 - the next beat tries again; the end is written anyway
                log.warning("import job %s: its progress could not be written", job.id)

    beating = asyncio.get_running_loop().create_task(heartbeat())
    try:
        await _import(rt, job, path, sha256)
    finally:
        beating.cancel()
        try:
            await Jobs.written(rt, job)
        except Exception:  # noqa: BLE001 - other workers then report it stopped, after STALE_S
            log.exception("import job %s: its end could not be written", job.id)


async def _import(rt: Runtime, job: Job, path: Path, sha256: str) -> None:
    try:
        rep = await import_file(rt.pool, rt.node, job.kind, path, progress=False, caller=job.caller,
                                scope=job.scope, via="http", name=job.file_name, sha256=sha256, job=job.progress,
                                max_bytes=rt.cfg.limits.max_import_bytes)
        rt.metrics.import_done(job.kind, rep.outcome, rep.rows, rep.seconds)
        # Committed: whatever happens from here on, the job says what the import did.
        job.report = rep
        for problem in await after_import(rt, rep, path):
            log.warning("import job %s: %s", job.id, problem)
        job.state = rep.outcome
    except asyncio.CancelledError:  # the node is stopping
        if job.report is not None:
            job.state = job.report.outcome
        else:
            job.state, job.error = "failed", STOPPED
        raise
    except ImportFailed as e:
        job.report, job.state, job.error = e.report, "rejected", str(e)
        if e.report is not None:
            rt.metrics.import_done(job.kind, "rejected", e.report.rows, e.report.seconds)
    except UserError as e:
        job.state, job.error = "rejected", str(e)
    except Exception as e:  # noqa: BLE001 - masked: the log has the reference, the caller the code
        ref = hashlib.sha256(f"{job.id}{e!r}".encode()).hexdigest()[:12]
        log.exception("import job %s failed (reference %s)", job.id, ref)
        if job.report is not None:  # after the commit: imported all the same
            job.state = job.report.outcome
        else:
            job.state, job.error = "failed", f"internal error (reference {ref}); nothing was imported"
    finally:
        path.unlink(missing_ok=True)


async def follow(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        caller = await _caller(request, rt, ("OPERATOR", "AUDITOR"))
    except TierfedError as e:
        return _error(e.code, e.message, 401 if e.code == Code.UNAUTHENTICATED else 403)
    job_id = request.path_params["id"]
    job = _jobs(request).jobs.get(job_id)  # run by this worker: as it stands
    if job is not None:
        scope, answer = job.scope, job.to_json()
    else:  # run by another worker, or before a restart: as the database has it
        stored = await Jobs.stored(rt, job_id) if len(job_id) <= 40 else None
        scope, answer = (stored.pop("scope"), stored) if stored is not None else ("", None)
    # A job outside the caller's scope is as unknown as a job that never was.
    if answer is None or not rt.tree.within(scope, caller.scope):
        return _error(Code.BAD_USER_INPUT, f"no import job {job_id[:40]!r} on this node", 404)
    return JSONResponse(answer, headers=NO_STORE)


def routes() -> list[Route]:
    return [Route("/imports/jobs/{id}", follow, methods=["GET"]),
            Route("/imports/{kind}", submit, methods=["POST"])]
