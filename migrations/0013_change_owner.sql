-- Recovery with several workers per node (docs/CHANGES.md "Recovery"): the process
-- coordinating a change is named on its row. Each process holds a session advisory
-- lock on its name (key 7366044, hashtext(owner)) for as long as it lives, so another
-- worker presumes a change abandoned only when its owner's lock is gone (the process
-- died, or lost its database connection), never while the owner is still at work.
-- Set from the connection of the change steps' pool (its tierfed.owner setting), so
-- no writer has to remember it; null on rows written before this migration.
alter table change add column owner text default current_setting('tierfed.owner', true);
