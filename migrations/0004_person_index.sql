-- One person across the federation: which parts of the subtree hold each person.
--
-- person_presence is this node's feed for its parent: every ID number present in
-- the node's subtree (registered here, or held by a child node), numbered in the
-- order it became known. A parent reads it from a watermark (seq) onwards.
-- person_index is a parent's view of its children: which child node holds each
-- person (directly or further down), so a person lookup asks only those.

create table person_presence (
    id_number text collate "C" primary key,
    seq       bigint not null
);
create index person_presence_by_seq on person_presence (seq);
create sequence person_presence_seq;

create table person_index (
    id_number text collate "C" not null,
    child     text collate "C" not null,
    primary key (id_number, child)
);
create index person_index_child on person_index (child, id_number);

-- How far this node has read each child's feed, and how far its parent has read ours.
create table person_index_sync (
    child     text collate "C" primary key,
    seq       bigint not null default 0,
    synced_at timestamptz
);

-- New presence rows are numbered under one transaction-scoped lock, so that the
-- order of seq is the order of commit: a reader past watermark w never misses a
-- row committed later with a smaller seq.
create function person_presence_add() returns trigger language plpgsql as $$
begin
    perform pg_advisory_xact_lock(7366043);
    insert into person_presence (id_number, seq)
    select n.id_number, nextval('person_presence_seq')
    from (select distinct id_number from added) n
    where not exists (select 1 from person_presence p where p.id_number = n.id_number)
    on conflict do nothing;
    return null;
end $$;

create trigger person_presence_from_person after insert on person
    referencing new table as added for each statement execute function person_presence_add();
create trigger person_presence_from_index after insert on person_index
    referencing new table as added for each statement execute function person_presence_add();

-- Persons registered before this migration.
insert into person_presence (id_number, seq)
select id_number, nextval('person_presence_seq') from person order by id_number;
