"""Numbered SQL migrations, applied in order by ``tierfed.db.migrate``, each in its own transaction."""
