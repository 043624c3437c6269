"""Resolver functions and the per-request loaders they ask. Resolvers never build SQL or HTTP."""
