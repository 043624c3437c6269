"""tierfed: a GraphQL federation server for China's four-tier social insurance agencies."""

__version__ = "0.1.0"
