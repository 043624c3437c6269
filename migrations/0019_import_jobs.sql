-- Imports submitted over HTTP, followed while they run (GET /imports/jobs/{id}): kept here, not in
-- the memory of the worker running one, so that any worker of the node answers for any job.
-- (The history of every import, through the CLI or HTTP, is import_run; a job is its live view.)
create table import_job (
    id         text collate "C" primary key,
    kind       text not null,
    file_name  text not null,
    caller     text not null,
    scope      text collate "C" not null,
    state      text not null,                -- running | imported | unchanged | rejected | failed
    progress   jsonb not null default '{}',
    error      text,
    report     jsonb,
    started_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index import_job_started on import_job (started_at);
