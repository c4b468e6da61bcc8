"""Errors a user can fix: the CLI prints their one-line message and exits with code 2."""

MAX_LINE = 500  # characters of a message line; the rest of a value quoted whole is cut



class UserError(Exception):
    """Bad input: a config, a path, an option. The message names it and what is allowed."""

    def lines(self) -> list[str]:
        """The message as the CLI prints it: one line (a value's own line breaks never make more)."""
        return [one_line(str(self))]


class ConfigError(UserError):
    """A config file or `--set` override that does not check out; `problems`: each bad key's own line, when
    there are several."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()):
        super().__init__(message)
        self.problems = problems

    def lines(self) -> list[str]:
        return [*super().lines(), *(f"  {one_line(line)}" for line in self.problems)]


class DataError(UserError):
    """A data source that cannot be read: missing, corrupt, wrong layout, no network."""


class StorageError(UserError):
    """A file that cannot be written or read back: a full disk, a read-only folder, no permission."""


def one_line(text: str) -> str:
    """`text` as one line of at most about MAX_LINE characters: its own line breaks never make more."""
    line = " ".join(text.splitlines())
    return line if len(line) <= MAX_LINE else f"{line[:MAX_LINE]}... (cut)"


def require_extra(extra: str, *modules: str) -> None:
    """One line when an optional part of rnn-cli is not installed, before anything imports it."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"this needs {', '.join(missing)}, which is not installed; pip install \"rnn-cli[{extra}]\"")
