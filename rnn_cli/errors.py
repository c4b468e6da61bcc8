"""Errors a user can fix: the CLI prints their one-line message and exits with code 2."""


class UserError(Exception):
    """Bad input: a config, a path, an option. The message names it and what is allowed."""


class ConfigError(UserError):
    """A config file or `--set` override that does not check out."""


class DataError(UserError):
    """A data source that cannot be read: missing, corrupt, wrong layout, no network."""


class StorageError(UserError):
    """A file that cannot be written or read back: a full disk, a read-only folder, no permission."""


def require_extra(extra: str, *modules: str) -> None:
    """One line when an optional part of rnn-cli is not installed, before anything imports it."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"this needs {', '.join(missing)}, which is not installed; pip install \"rnn-cli[{extra}]\"")
