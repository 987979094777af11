"""The version of dojobber (one place; the package and its tools read it)."""

__version__ = "0.7.0"
