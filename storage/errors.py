"""Failures of the storage layer that a caller can act on."""


class StorageError(Exception):
    """Base class for storage failures."""


class MigrationError(StorageError):
    """A migration could not be applied, or the applied history disagrees with the files."""


class LocalServerError(StorageError):
    """An embedded PostgreSQL or Redis server could not be started or stopped."""
