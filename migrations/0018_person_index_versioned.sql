-- A parent's person index decides which child nodes a person lookup (and duplicateInsurance)
-- asks: when it learns of a person, the answers that found nobody must not be served again from
-- the answer cache. Every statement changing it now moves this node's data version (0007).
-- (Its statements run only when a child's feed has new rows: a sync that reads nothing moves nothing.)
select tierfed_versioned('person_index');
