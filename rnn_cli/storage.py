"""Where a study's trials live: Optuna's journal file in the study folder (workers on one machine), or a
PostgreSQL database (--storage, workers on several), opened with every wait bounded. A database URL's
password is never printed nor kept: `hidden` is how messages show a URL, `kept_url` how study.json keeps it."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

from rnn_cli.errors import UserError
from rnn_cli.files import make_dir

STUDY_FILE = "study.journal"  # Optuna's journal, when no --storage is given
CONNECT_TIMEOUT = 10  # seconds a database server may take to accept a connection and answer its start-up
STATEMENT_TIMEOUT = 60  # seconds one statement may run on it (Optuna's are small)


def open_storage(url: str | None, folder: Path):
    """The journal file in the study's `folder`, or the database at `url` (--storage), checked by connecting."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if url is None:
        make_dir(folder)
        # An absolute path: Optuna's default lock is a symlink to the path given, which a relative
        # path leaves dangling, and a dangling lock left by a killed worker is never broken. A lock
        # is held for one write; one held for 10 s is a dead worker's.
        path = str((folder / STUDY_FILE).resolve())
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path, grace_period=10)))
    if not re.match(r"(postgresql|sqlite)(\+\w+)?://", url):
        raise UserError(f"--storage {hidden(url)}: expected postgresql://USER:PASSWORD@HOST:PORT/DB")
    for attempt in range(3):
        try:
            # A worker that dies (kill -9, a lost machine) stops beating: its trial is failed after the
            # grace period, and the next worker retries it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=30, grace_period=120,
                                  heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1),
                                  engine_kwargs={"connect_args": timeouts(url)})
        except Exception as err:  # noqa: BLE001 - SQLAlchemy and its drivers fail in many ways
            # Workers started together on an empty database race to create Optuna's tables: the
            # losers find them made when they try again.
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            if "timeout" in reason.lower():  # a server that does not answer: waiting again would not help
                wait = timeouts(url).get("connect_timeout")
                reason = f"no answer within {wait} s; is it a PostgreSQL server, and up? ({reason})"
                break
            if "password" in reason.lower():
                reason += "; give --storage with the password (study.json keeps none), or set PGPASSWORD"
            if attempt < 2:
                time.sleep(1 + attempt)
    for secret in secrets(url):  # a driver's message might quote the connection string
        reason = reason.replace(secret, "***")
    raise UserError(f"--storage {hidden(url)}: cannot open it ({reason})")


def timeouts(url: str) -> dict:
    """The driver's connection settings that bound every wait on the database server: connecting (a server that
    accepts and never answers) and each statement; a setting in the URL itself wins."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    settings = {"connect_timeout": CONNECT_TIMEOUT, "options": f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}"}
    return {**settings, **{key: parsed.query[key] for key in settings if key in parsed.query}}


def hidden(url: str) -> str:
    """A database URL as messages show it: its password, in any form SQLAlchemy reads it (USER:PASSWORD@,
    :PASSWORD@, ?password=), replaced by ***. SQLAlchemy's own parser, not a pattern: it is what connects."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(a URL that does not parse)"
    masked = {key: "***" for key in parsed.query if "password" in key.lower()}
    return parsed.update_query_dict(masked).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def kept_url(url: str | None) -> str | None:
    """A database URL as study.json keeps it: without its password (PostgreSQL's client finds it in PGPASSWORD or
    ~/.pgpass, or --storage gives it again)."""
    from sqlalchemy.engine import URL, make_url

    if url is None:
        return None
    parsed = make_url(url)
    query = {key: value for key, value in parsed.query.items() if "password" not in key.lower()}
    return URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      query).render_as_string(hide_password=False)


def secrets(url: str) -> list[str]:
    """The passwords in a database URL (its password and any password-like query value)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return [url]
    values = [parsed.password, *(v for key, v in parsed.query.items() if "password" in key.lower())]
    flat = [item for value in values if value for item in ([value] if isinstance(value, str) else value)]
    return sorted(set(flat), key=len, reverse=True)
