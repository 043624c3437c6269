"""The DataLoader every loader of a request is made from."""

from __future__ import annotations

import asyncio
from typing import Any

from aiodataloader import DataLoader


class Loader(DataLoader):
    """A DataLoader whose shared futures survive one awaiting resolver being cancelled.

    graphql-core cancels sibling resolvers when an error nulls their parent; a
    cached batch future awaited directly would be cancelled for every other
    resolver waiting on the same key.
    """

    def load(self, key: Any) -> Any:
        return asyncio.shield(super().load(key))
