-- Fund flows booked from files (the fund_flows import kind): fiscal subsidies,
-- interest, investment returns, amounts from and to other tiers, other income and
-- expenditure. One row per pool, month and category; the row's region is the one
-- the file named, the pool the one of its scheme covering that region in the month.
create table fund_flow (
    pool_id     text collate "C" not null references pool (id),
    month       date not null check (extract(day from month) = 1),
    category    text collate "C" not null,
    scheme      smallint not null check (scheme between 1 and 5),
    region_code text collate "C" not null references region (code),
    amount      numeric(16, 2) not null check (amount >= 0),
    primary key (pool_id, month, category)
);

-- Booked like the records: per category, for the pool's region and every ancestor
-- up to the node's root, in the flow's month, so an account over a year reads
-- summaries. booked_net (income less expenditure) is what balances add.
alter table summary add column fiscal_subsidy numeric not null default 0,
                    add column interest numeric not null default 0,
                    add column investment_return numeric not null default 0,
                    add column subsidy_from_above numeric not null default 0,
                    add column remittance_from_below numeric not null default 0,
                    add column other_income numeric not null default 0,
                    add column subsidy_to_below numeric not null default 0,
                    add column remittance_to_above numeric not null default 0,
                    add column other_expenditure numeric not null default 0;
alter table summary add column booked_net numeric generated always as (
    fiscal_subsidy + interest + investment_return + subsidy_from_above + remittance_from_below + other_income
    - subsidy_to_below - remittance_to_above - other_expenditure) stored;

-- Writes to the fund flows move the node's data version (migration 0007), as writes to
-- every table answers are read from do.
select tierfed_versioned('fund_flow');
