-- A change's own bookkeeping across nodes moves no data version (issue 11, fourth pass).
--
-- change, change_participant and change_reservation record where a change across nodes
-- stands: its intent, each participant's prepare, the acknowledgements, the releases. No
-- cached answer shows them: the one root field that reads them, `changes`, is never
-- served from or kept in the answer cache (tierfed/answers.py UNCACHED_ROOTS), as pii_audit
-- and the person index tables were left out before (0007). What a change does to the
-- figures (pools opened and closed, transfers, persons, summaries, fund flows) is written
-- to versioned tables and still moves the version, in the same transaction.
--
-- Before, every intent, prepare and acknowledgement moved the node's version: each one
-- locked data_version's row at its commit (until its flush, for a prepare) and was pushed
-- up the tree, so a stream of transfers sent the coordinator two pushes per participant
-- per transfer and queued its decisions behind their flushes.

drop trigger if exists versioned_change on change;
drop trigger if exists versioned_truncate_change on change;
drop trigger if exists versioned_change_participant on change_participant;
drop trigger if exists versioned_truncate_change_participant on change_participant;
drop trigger if exists versioned_change_reservation on change_reservation;
drop trigger if exists versioned_truncate_change_reservation on change_reservation;
