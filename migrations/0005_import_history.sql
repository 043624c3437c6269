-- Imports: the history of every import on this node, and the checks of ID
-- numbers and credit codes that the set-based import runs over the values it
-- does not find registered (tierfed/codes.py is the reference; a test checks
-- that both agree on every value).

-- One row per import, through the CLI or HTTP, whatever its outcome. The id is
-- the node's import sequence: imports are serialised, so a later commit has a
-- larger id. ``version`` is the id of an import that changed data (null when it
-- changed nothing): the data version it produced, until data versions exist.
create table import_run (
    id          bigserial primary key,
    started_at  timestamptz not null,
    finished_at timestamptz not null default now(),
    caller      text not null,                 -- token subject, or 'cli'
    scope       text collate "C" not null,     -- the caller's scope (the node's region for the CLI)
    via         text not null check (via in ('cli', 'http')),
    kind        text not null,
    file_name   text not null,
    sha256      text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    bytes       bigint not null,
    rows        bigint not null default 0,
    inserted    bigint not null default 0,
    unchanged   bigint not null default 0,
    bad_rows    bigint not null default 0,
    outcome     text not null check (outcome in ('imported', 'unchanged', 'rejected', 'failed')),
    message     text,
    warnings    jsonb not null default '[]',
    version     bigint,
    same_as     bigint references import_run (id)
);
create index import_run_sha on import_run (kind, sha256) where outcome in ('imported', 'unchanged');
create index import_run_scope on import_run (scope, id);

-- GB 11643 resident ID number: 17 digits, a check digit or X (ISO 7064 MOD 11-2),
-- a real birth date from 1900 to today. Upper-cased and trimmed first, as codes.id_number.
create function tierfed_id_number_ok(value text) returns boolean
language plpgsql immutable strict as $$
declare
    v text := upper(btrim(value, E' \t\r\n\f\v'));
    s int := 0;
    w int[] := array[7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    born date;
begin
    if v !~ '^[0-9]{17}[0-9X]$' then
        return false;
    end if;
    begin
        born := make_date(substr(v, 7, 4)::int, substr(v, 11, 2)::int, substr(v, 13, 2)::int);
    exception when others then
        return false;
    end;
    if extract(year from born) < 1900 or born > current_date then
        return false;
    end if;
    for k in 1..17 loop
        s := s + substr(v, k, 1)::int * w[k];
    end loop;
    return substr('10X98765432', s % 11 + 1, 1) = substr(v, 18, 1);
end $$;

-- GB 32100 unified social credit code: 18 characters of 0-9 and A-Y without I, O, S, V, Z,
-- the last one its check character. Upper-cased and trimmed first, as codes.credit_code.
create function tierfed_credit_code_ok(value text) returns boolean
language plpgsql immutable strict as $$
declare
    chars text := '0123456789ABCDEFGHJKLMNPQRTUWXY';
    v text := upper(btrim(value, E' \t\r\n\f\v'));
    s int := 0;
    w int[] := array[1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
    r int;
begin
    if v !~ '^[0-9A-HJ-NPQRTUWXY]{18}$' then
        return false;
    end if;
    for k in 1..17 loop
        s := s + (strpos(chars, substr(v, k, 1)) - 1) * w[k];
    end loop;
    r := 31 - s % 31;
    return substr(chars, (case when r = 31 then 0 else r end) + 1, 1) = substr(v, 18, 1);
end $$;

-- One CSV line to its fields (RFC 4180 quoting), for the lines that hold a quote;
-- the others are split with string_to_array.
create function tierfed_csv_fields(line text) returns text[]
language plpgsql immutable strict as $$
declare
    out text[] := '{}';
    cur text := '';
    quoted boolean := false;
    i int := 1;
    n int := length(line);
    c text;
begin
    while i <= n loop
        c := substr(line, i, 1);
        if quoted then
            if c = '"' then
                if substr(line, i + 1, 1) = '"' then
                    cur := cur || '"';
                    i := i + 1;
                else
                    quoted := false;
                end if;
            else
                cur := cur || c;
            end if;
        elsif c = '"' then
            quoted := true;
        elsif c = ',' then
            out := out || cur;
            cur := '';
        else
            cur := cur || c;
        end if;
        i := i + 1;
    end loop;
    return out || cur;
end $$;
