"""Errors that a user can fix: the CLI prints them as one line, without a traceback."""


class MnistlabError(Exception):
    """Bad input (config, data files) or a run that cannot go on; the message says what to do."""


class ConfigError(MnistlabError):
    """A config value outside what the recipe allows."""


class DataError(MnistlabError):
    """A data file that is missing, corrupt or cannot be downloaded."""


class NonFiniteLossError(MnistlabError):
    """Training diverged: continuing would only waste time on NaNs."""
