"""Single source of the package version."""

__version__ = "0.1.0"
#: Version of the on-disk format written by :meth:`PromptClassifier.save`.
FORMAT_VERSION = 1
