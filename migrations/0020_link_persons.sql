-- The head of each child's person feed as its link last told it (tiers.links, tiers.personindex):
-- kept here, beside the lease, so that whichever worker of a parent answers its own parent's
-- check knows whether the node's person index is behind a child (it then grants no lease).
-- Not versioned: only a change of a child's version marks the transaction (0012's trigger).
alter table tier_link add column persons bigint not null default 0;
