-- A bigint sum that stays bigint (the importer adds up amounts in whole fen, tierfed/imports/store.py).
-- The built-in sum(bigint) returns numeric through a 128-bit state allocated per group, which
-- made the summaries' hash aggregates of an import about twice as slow; this one adds by value
-- (int8pl) and raises "bigint out of range" past 9.2e18 (9.2e16 yuan in one summary row of one import).
create aggregate tierfed_int8_sum(bigint) (sfunc = int8pl, stype = bigint, combinefunc = int8pl, parallel = safe);
