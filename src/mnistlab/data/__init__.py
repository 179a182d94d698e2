"""Dataset files, their download, and the one train/validation/test split both backends use."""

from mnistlab.data.splits import Splits, load_splits

__all__ = ["Splits", "load_splits"]
