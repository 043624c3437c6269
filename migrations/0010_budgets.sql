-- Fund budgets (issue 16): a pool's budget for a year, drafted by its agency and moved
-- through DRAFT -> SUBMITTED -> REVIEWED -> APPROVED (or returned to DRAFT with a reason).
-- Stored on the node that holds the pool; compiled upward at query time.
create table budget (
    pool_id                text collate "C" not null references pool (id),
    year                   smallint not null check (year between 1990 and 2100),
    scheme                 smallint not null check (scheme between 1 and 5),
    region_code            text collate "C" not null references region (code),
    state                  text collate "C" not null default 'DRAFT'
                           check (state in ('DRAFT', 'SUBMITTED', 'REVIEWED', 'APPROVED')),
    expected_insured       bigint not null default 0 check (expected_insured >= 0),
    expected_contributors  bigint not null default 0 check (expected_contributors >= 0),
    expected_beneficiaries bigint not null default 0 check (expected_beneficiaries >= 0),
    -- how a draft was started from accounts (base period, growth per category), or null
    basis                  jsonb,
    returned_reason        text,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now(),
    primary key (pool_id, year)
);
create index budget_region_year on budget (year, region_code);

-- One amount per category (the contract's FundFlowCategory), fen exact.
create table budget_line (
    pool_id  text collate "C" not null,
    year     smallint not null,
    category text collate "C" not null check (category in (
                 'CONTRIBUTIONS', 'FISCAL_SUBSIDY', 'INTEREST', 'INVESTMENT_RETURN', 'TRANSFER_IN',
                 'SUBSIDY_FROM_ABOVE', 'REMITTANCE_FROM_BELOW', 'OTHER_INCOME', 'BENEFITS', 'TRANSFER_OUT',
                 'SUBSIDY_TO_BELOW', 'REMITTANCE_TO_ABOVE', 'OTHER_EXPENDITURE')),
    amount   numeric(16, 2) not null check (amount >= 0),
    primary key (pool_id, year, category),
    foreign key (pool_id, year) references budget (pool_id, year)
);

-- Every step of every budget: who, when, from which state to which, and what changed.
create table budget_step (
    id         bigserial primary key,
    pool_id    text collate "C" not null,
    year       smallint not null,
    action     text collate "C" not null,
    from_state text collate "C",
    to_state   text collate "C" not null,
    caller     text not null,
    roles      text[] not null,
    reason     text,
    changes    jsonb not null default '{}',
    at         timestamptz not null default clock_timestamp(),
    foreign key (pool_id, year) references budget (pool_id, year)
);
create index budget_step_budget on budget_step (pool_id, year, id);

-- Budgets answer reads (compiled budgets, execution): their writes move the data version.
select tierfed_versioned('budget');
select tierfed_versioned('budget_line');
select tierfed_versioned('budget_step');
