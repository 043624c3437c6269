"""The SQL of data versions and of the links to child nodes (``tiers.versions``, ``tiers.links``)."""

from __future__ import annotations

# This node's version, with the head of its person feed (``tiers.personindex``), in one statement.
OWN_AND_PERSONS = ("select version, (select coalesce(max(seq), 0) from person_presence) as persons "
                   "from data_version where one")


# On a parent: a child's version, as checked (with a lease counted from when the check was sent) ...
# Any other version than the one kept moves this node's version: only "it moved" matters, so a
# late push of an older version costs one needless miss, and a child restored from a backup (its
# version lower than before) is still noticed.
CHECKED = ("insert into tier_link (child, version, up_until, persons) "
           "values ($1, $2, $3::timestamptz + make_interval(secs => $4), $5) "
           "on conflict (child) do update set version = excluded.version, up_until = excluded.up_until, "
           "persons = excluded.persons "
           "returning persons > coalesce((select seq from person_index_sync where child = $1), 0) as behind")


# ... or as pushed (the lease is left as it is: only a check grants one). Each with the head of the
# child's person feed: a check's as told (a restored child's feed may be lower), a push's never lower.
PUSHED = ("insert into tier_link (child, version, up_until, persons) values ($1, $2, 'epoch', $3) "
          "on conflict (child) do update set version = excluded.version, "
          "persons = greatest(tier_link.persons, excluded.persons)")

# Whether this node's person index is behind one of these children's feeds (the head its link
# last told, against what any process of this node has read of it: person_index_sync).
INDEX_BEHIND = ("select exists (select 1 from tier_link l left join person_index_sync s using (child) "
                "where l.child = any($1::text[]) and l.persons > coalesce(s.seq, 0))")


DOWN = "update tier_link set up_until = 'epoch' where child = $1"


# The seconds left of the links to these children (None when one was never checked).
LEFT = ("select case when count(*) = cardinality($1::text[]) then "
        "greatest(0, extract(epoch from min(up_until) - clock_timestamp()))::float8 end "
        "from tier_link where child = any($1::text[])")


# On a child: the lease granted to the parent, recorded before the version is read.
GRANT = "update tier_lease set until = greatest(until, clock_timestamp() + make_interval(secs => $1)) where one"


LEASE_LEFT = "select greatest(0, extract(epoch from until - clock_timestamp()))::float8 from tier_lease where one"


OWN_VERSION = "select version from data_version where one"


# The version and the children whose links are up, in one primary-key lookup (and the few link rows).
SUBTREE_VERSION = ("select version, array(select child from tier_link where up_until > clock_timestamp()) "
                   "from data_version where one")
