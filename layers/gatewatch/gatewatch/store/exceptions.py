"""Errors every results-store adapter raises, so callers never catch a driver's own exception types."""


class StoreError(Exception):
    """The store could not be read or written."""


class ConflictError(StoreError):
    """A conditional write lost a race: someone else changed the item first. Re-read and decide again."""
