-- Pools are history: a pool covers one region's subtree for one scheme over a
-- range of months; a raise closes pools and links them to their successor.
-- Balances are computed from the summaries, never stored.
create table pool (
    id              text collate "C" primary key,
    scheme          smallint not null check (scheme between 1 and 5),
    region_code     text collate "C" not null references region (code),
    opened_from     date not null,
    closed_after    date,
    -- for a pool with no predecessors, its opening balance; for a raised pool,
    -- the amount transferred when it was opened (kept for the record: the live
    -- opening balance is recomputed from the predecessors)
    opening_balance numeric(16, 2) not null,
    successor_id    text collate "C" references pool (id),
    created_at      timestamptz not null default now(),
    check (closed_after is null or closed_after >= opened_from)
);
create index pool_scheme_region on pool (scheme, region_code);
create index pool_successor on pool (successor_id);

-- Every raisePoolingLevel that changed something: the audit record and the
-- idempotency key in one.
create table pooling_change (
    id              bigserial primary key,
    idempotency_key text not null unique,
    input           jsonb not null,
    result          jsonb not null,
    caller          text not null,
    created_at      timestamptz not null default now()
);

-- Every read of an unmasked ID number.
create table pii_audit (
    id         bigserial primary key,
    at         timestamptz not null default now(),
    caller     text not null,
    scope      text not null,
    id_number  text not null,
    operation  text not null
);
create index pii_audit_at on pii_audit (at);
