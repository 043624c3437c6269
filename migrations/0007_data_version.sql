-- Data versions (README "Fresh answers"): one number per node that advances in
-- the same transaction as every commit changing what an answer can show.
--
-- Writers need not remember anything: a statement-level trigger on each table
-- answers are read from marks the transaction (one row in data_version_pending,
-- once per transaction), and a deferred constraint trigger on that row advances
-- the version when the transaction commits. The version row is therefore locked
-- only at commit, after every other lock the transaction takes: concurrent
-- writers queue there for an instant and can never deadlock on it. Readers read
-- the version first (one primary-key lookup), then the figures: a figure is never
-- older than the version it is cached under.
--
-- Left out: pii_audit (written by unmasked reads, which are never cached; the
-- audit log is never cached either) and the person index tables (they say which
-- child to ask, never what an answer holds).

create table data_version (
    one     boolean primary key default true check (one),
    version bigint not null
);
insert into data_version (version) values (1);

create table data_version_pending (
    xid bigint primary key
);

create function tierfed_mark_changed() returns trigger
language plpgsql as $$
declare
    x text := txid_current()::text;
begin
    if current_setting('tierfed.version_marked', true) is distinct from x then
        perform set_config('tierfed.version_marked', x, true);
        insert into data_version_pending (xid) values (x::bigint) on conflict do nothing;
    end if;
    return null;
end $$;

create function tierfed_advance_version() returns trigger
language plpgsql as $$
begin
    update data_version set version = version + 1 where one;
    delete from data_version_pending where xid = new.xid;
    return null;
end $$;

create constraint trigger data_version_advance after insert on data_version_pending
    deferrable initially deferred for each row execute function tierfed_advance_version();

-- A table whose rows answers show: every statement changing it marks its transaction.
-- (A table added by a later migration calls this too.)
create function tierfed_versioned(t regclass) returns void
language plpgsql as $$
begin
    execute format('create trigger %I after insert or update or delete on %s '
                   'for each statement execute function tierfed_mark_changed()', 'versioned_' || t::text, t);
    execute format('create trigger %I after truncate on %s '
                   'for each statement execute function tierfed_mark_changed()', 'versioned_truncate_' || t::text, t);
end $$;

select tierfed_versioned(t) from unnest(array[
    'region', 'region_closure', 'agency', 'employer', 'person', 'contribution', 'benefit', 'summary',
    'pool', 'pooling_change', 'import_run', 'change', 'change_participant', 'change_reservation',
    'pool_remote_predecessor', 'insurance_transfer'
]::regclass[]) as t;
