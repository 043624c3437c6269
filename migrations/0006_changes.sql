-- Changes that span nodes (docs/CHANGES.md). Every node keeps its own part:
-- as coordinator, the change and its one durable decision (state moves from
-- PENDING to COMMITTED or ABORTED exactly once: the point of no return); as
-- participant, its reserved part, applied or released when the decision
-- reaches it. Reservations keep other changes off the pools and persons involved.
create table change (
    id              text collate "C" primary key,
    kind            text not null,
    -- 'coordinator' or 'participant'
    role            text not null check (role in ('coordinator', 'participant')),
    -- the node this node answers to for this change (participants only)
    parent_node     text,
    state           text not null default 'PENDING' check (state in ('PENDING', 'COMMITTED', 'ABORTED')),
    idempotency_key text not null,
    input           jsonb not null,
    -- what this node applies on the decision (its own part)
    plan            jsonb not null default '{}',
    result          jsonb,
    caller          text not null,
    started_at      timestamptz not null default now(),
    decided_at      timestamptz
);
-- one live change per key; an aborted one leaves the key free for a new attempt
create unique index change_key on change (idempotency_key) where state <> 'ABORTED';
create index change_open on change (state) where state = 'PENDING';

-- The nodes this node asked to take part (its direct children), and where each stands.
create table change_participant (
    change_id text collate "C" not null references change (id),
    node      text not null,
    region    text collate "C" not null,
    state     text not null default 'PENDING' check (state in ('PENDING', 'COMMITTED', 'ABORTED')),
    primary key (change_id, node)
);

-- What a change in progress holds: a scheme's pools over a region's subtree, or a person.
create table change_reservation (
    change_id   text collate "C" not null references change (id),
    scheme      smallint,
    region_code text collate "C",
    id_number   text collate "C",
    check ((scheme is null) = (region_code is null)),
    check ((region_code is null) <> (id_number is null))
);
create index change_reservation_region on change_reservation (scheme, region_code);
create unique index change_reservation_person on change_reservation (id_number) where id_number is not null;

-- A pool's predecessors held by child nodes: kept at the successor's node, so
-- that its live opening balance adds their balances at closing (asked of the
-- child that holds each) to its own predecessors'.
create table pool_remote_predecessor (
    predecessor_id text collate "C" primary key,
    successor_id   text collate "C" not null references pool (id),
    node           text not null,
    scheme         smallint not null,
    region_code    text collate "C" not null,
    opened_from    date not null,
    closed_after   date not null,
    opening_balance numeric(16, 2) not null
);
create index pool_remote_predecessor_successor on pool_remote_predecessor (successor_id);

-- A pool closed by a change across nodes names a successor held by its parent node.
alter table pool drop constraint pool_successor_id_fkey;

-- Insurance transfers (transferInsurance): this node's side of each committed one.
-- direction 'out': the person's insurance left a region of this node; 'in': it
-- arrived in one. schemes: one entry per scheme the person had at the origin,
-- [{"scheme": 1, "individualAccount": "...", "pooledFund": "..."}].
create table insurance_transfer (
    id             text collate "C" not null,
    direction      text not null check (direction in ('out', 'in')),
    id_number      text collate "C" not null,
    name           text not null,
    from_region    text collate "C" not null references region (code),
    to_region      text collate "C" not null references region (code),
    effective_from date not null check (extract(day from effective_from) = 1),
    schemes        jsonb not null,
    created_at     timestamptz not null default now(),
    primary key (id, direction)
);
create index insurance_transfer_person on insurance_transfer (id_number, effective_from);

-- Pooled funds moved by transfers, booked like the records: for the region and
-- every ancestor up to the node's root, in the month the transfer takes effect.
alter table summary add column transfers_in numeric not null default 0,
                    add column transfers_out numeric not null default 0;
