"""Errors a user can fix: the CLI prints their one-line message and exits with code 2."""


class UserError(Exception):
    """Bad input: a config, a path, an option. The message names it and what is allowed."""

    def lines(self) -> list[str]:
        """The message as the CLI prints it: one line (a value's own line breaks never make more)."""
        return [" ".join(str(self).splitlines())]


class ConfigError(UserError):
    """A config file or `--set` override that does not check out; `problems`: each bad key's own line, when
    there are several."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()):
        super().__init__(message)
        self.problems = problems

    def lines(self) -> list[str]:
        return [*super().lines(), *(f"  {' '.join(line.splitlines())}" for line in self.problems)]


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
