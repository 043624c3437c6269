-- The directory (regions and agencies), registrations and the records, with
-- the per-(region, month, scheme) summaries that every rollup reads.
-- Codes: tier 0 central, 1 province, 2 city, 3 county; scheme 1 PENSION,
-- 2 MEDICAL, 3 WORK_INJURY, 4 UNEMPLOYMENT, 5 MATERNITY; department 1 human
-- resources and social security, 2 healthcare security; agency kind 1 AGENCY,
-- 2 BRANCH, 3 SERVICE_OUTLET.

create table region (
    code        text collate "C" primary key check (code ~ '^[0-9]{6}$'),
    name        text not null check (name <> ''),
    tier        smallint not null check (tier between 0 and 3),
    parent_code text collate "C" references region (code),
    -- from the nation down, excluding the region itself; rebuilt with the closure
    ancestors   text[] not null default '{}',
    check ((tier = 0) = (parent_code is null))
);
create index region_parent on region (parent_code, code);

-- Every (ancestor, descendant) pair, the region itself included at depth 0.
create table region_closure (
    ancestor   text collate "C" not null references region (code),
    descendant text collate "C" not null references region (code),
    depth      smallint not null,
    primary key (ancestor, descendant)
);
create index region_closure_descendant on region_closure (descendant, ancestor);

create table agency (
    code               text collate "C" primary key,
    name               text not null check (name <> ''),
    department         smallint not null check (department in (1, 2)),
    kind               smallint not null check (kind between 1 and 3),
    region_code        text collate "C" not null references region (code),
    parent_code        text collate "C" references agency (code) deferrable initially deferred,
    vertically_managed boolean not null default false
);
create index agency_region on agency (region_code, code);
create index agency_parent on agency (parent_code, code);

create table employer (
    credit_code         text collate "C" primary key,
    name                text not null,
    region_code         text collate "C" not null references region (code),
    industry_risk_class smallint not null check (industry_risk_class between 1 and 8)
);
create index employer_region on employer (region_code);

create table person (
    id_number   text collate "C" primary key,
    name        text not null,
    region_code text collate "C" not null references region (code)
);
create index person_region on person (region_code);

-- Records: one per (person, scheme, month), partitioned by month so a large
-- province node can take in billions of rows a year and drop or archive whole months.
create table contribution (
    id_number                 text collate "C" not null,
    scheme                    smallint not null check (scheme between 1 and 5),
    month                     date not null check (extract(day from month) = 1),
    region_code               text collate "C" not null,
    employer_credit_code      text collate "C",
    base                      numeric(14, 2) not null check (base >= 0),
    employer_amount           numeric(14, 2) not null check (employer_amount >= 0),
    individual_amount         numeric(14, 2) not null check (individual_amount >= 0),
    individual_account_amount numeric(14, 2) not null check (individual_account_amount between 0 and individual_amount),
    primary key (id_number, scheme, month)
) partition by range (month);

create table benefit (
    id_number   text collate "C" not null,
    scheme      smallint not null check (scheme between 1 and 5),
    month       date not null check (extract(day from month) = 1),
    region_code text collate "C" not null,
    amount      numeric(14, 2) not null check (amount >= 0),
    primary key (id_number, scheme, month)
) partition by range (month);

-- Kept in step with the records in the same transaction as each import, for
-- the record's region and every ancestor up to the node's root region.
-- contributions and benefits are record counts: within one month they are
-- also distinct persons, as a person has at most one record per scheme and month.
create table summary (
    region_code        text collate "C" not null,
    month              date not null,
    scheme             smallint not null,
    contributions      bigint not null default 0,
    employer           numeric not null default 0,
    individual         numeric not null default 0,
    individual_account numeric not null default 0,
    base               numeric not null default 0,
    benefits           bigint not null default 0,
    benefits_paid      numeric not null default 0,
    primary key (region_code, month, scheme)
);

-- Monthly partitions on demand; idempotent.
create function tierfed_ensure_month_partitions(first date, last date) returns void
language plpgsql as $$
declare
    m date := date_trunc('month', first)::date;
    t text;
begin
    while m <= last loop
        foreach t in array array['contribution', 'benefit'] loop
            execute format(
                'create table if not exists %I partition of %I for values from (%L) to (%L)',
                t || '_' || to_char(m, 'YYYY_MM'), t, m, (m + interval '1 month')::date);
        end loop;
        m := (m + interval '1 month')::date;
    end loop;
end $$;
