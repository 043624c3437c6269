"""The GraphQL schema: types in ``types``, scalars in ``scalars``, the root in ``root``."""
