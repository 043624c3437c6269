-- The scheme columns that had no check of their own (tests/test_vocabulary.py found
-- them): every stored scheme is one of tiers/vocabulary.py's five, numbered from 1.
-- Added NOT VALID then validated, so a large summary table is not locked while scanned.
alter table summary add constraint summary_scheme_check check (scheme between 1 and 5) not valid;
alter table summary validate constraint summary_scheme_check;
alter table change_reservation add constraint change_reservation_scheme_check check (scheme between 1 and 5);
alter table pool_remote_predecessor add constraint pool_remote_predecessor_scheme_check check (scheme between 1 and 5);
