-- Versions pushed up the tree (README "Fresh answers at cache speed").
--
-- tier_link, on a parent: each child's version as last pushed by the child or read by
-- the parent's periodic check, and until when the parent may answer from it (the lease
-- the child granted). A child's version that moves advances this node's own version in
-- the same transaction, so while every link a request reaches is up, the node's own
-- version (one primary-key lookup) is its subtree's version and no child is asked.
-- Renewing a lease changes no figure: only a change of version marks the transaction.
--
-- tier_lease, on a child: the latest time until which its parent may answer from what
-- it last learned. A commit the child cannot push to its parent is reported done only
-- after that time, when the parent checks the child per request again.
--
-- Every advance of a node's version is announced on the channel tierfed_version, so
-- live answers (subscriptions) and the push to the parent follow every commit, whichever
-- process or worker made it.

create table tier_link (
    child     text primary key,
    version   bigint not null,
    up_until  timestamptz not null
);

create trigger versioned_tier_link_insert after insert on tier_link
    for each row execute function tierfed_mark_changed();
create trigger versioned_tier_link_update after update on tier_link
    for each row when (old.version is distinct from new.version) execute function tierfed_mark_changed();
create trigger versioned_tier_link_delete after delete on tier_link
    for each row execute function tierfed_mark_changed();

create table tier_lease (
    one    boolean primary key default true check (one),
    until  timestamptz not null
);
insert into tier_lease (until) values ('epoch');

create or replace function tierfed_advance_version() returns trigger
language plpgsql as $$
declare
    v bigint;
begin
    update data_version set version = version + 1 where one returning version into v;
    delete from data_version_pending where xid = new.xid;
    perform pg_notify('tierfed_version', v::text);
    return null;
end $$;
