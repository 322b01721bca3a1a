"""Persistence: the resource store, its search index and its migrations."""
