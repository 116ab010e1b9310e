"""One exception family for everything a user can get wrong.

The library raises subclasses of :class:`MMBalanceError`; the CLI turns any of them into
one red line on stderr and exit code 2 (see :mod:`mmbalance.cli`). The core never
imports exit codes.

Example:
    >>> try:
    ...     raise DataError("labels out of range", hint="check the 'labels' tensor")
    ... except MMBalanceError as err:
    ...     print(err)
    labels out of range (check the 'labels' tensor)
"""

from __future__ import annotations


class MMBalanceError(Exception):
    """A user-facing error: bad input, bad options, unreadable files.

    ``hint`` says what to do about it and is appended to the message.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class UsageError(MMBalanceError):
    """Options that contradict each other or have invalid values."""


class ModelError(MMBalanceError):
    """Unknown model, factory that fails to import or build, unsupported forward/outputs."""


class CheckpointError(MMBalanceError):
    """Missing, corrupt, untrusted or mismatched checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """A file that safe loading (``weights_only=True``) refused: it holds pickled Python objects."""


class DataError(MMBalanceError):
    """Missing or malformed dataset, bad labels, non-finite inputs, unreadable media."""


class ResultsError(MMBalanceError):
    """An audit JSON / metrics CSV that cannot be read (wrong schema, truncated, missing columns)."""


class EstimatorError(MMBalanceError):
    """An attribution estimator that cannot apply to this model or these options."""


class TrainingError(MMBalanceError):
    """Training cannot go on (NaN loss, incompatible resume directory)."""


class OutputError(MMBalanceError):
    """An output that cannot be written: a directory where a file is wanted, no space, read-only, locked."""


class MMBalanceWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI shows it as one line).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warnings.warn("validation uses the training samples", MMBalanceWarning)
        >>> str(caught[0].message)
        'validation uses the training samples'
    """
