"""The project's one exception for bad input (torch-free, so every module can raise it)."""


class ConfigError(ValueError):
    """A bad configuration value, reported in one line naming the field and what is allowed."""
