-- Statements sent to persons (`tierfed statements`, Social Insurance Law art. 74): one row per
-- person, year and delivery once the person's statement is in its file, renamed into place.
-- A rerun after an interruption skips these persons (README "Statements sent to persons").
-- delivery: 'person' (one PDF each) or 'county' (one PDF per county, for a print shop).
-- Read by no answer: no data version.

create table statement_sent (
    id_number   text collate "C" not null,
    year        integer not null check (year between 1990 and 2100),
    delivery    text not null check (delivery in ('person', 'county')),
    region_code text collate "C" not null,
    file        text not null,
    sent_at     timestamptz not null default now(),
    primary key (id_number, year, delivery)
);
