"""`rnn tune`'s search space: a YAML mapping of config keys (as --set takes them) to ranges or choices,
each checked against the base config before any trial starts; `Param.suggest` draws a trial's value."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from rnn_cli.config import Config, ConfigError, config_from_dict, to_dict
from rnn_cli.errors import UserError
from rnn_cli.parsing import excerpt, is_finite, load_yaml

KINDS = ("uniform", "log_uniform", "int", "choice")


@dataclass(frozen=True)
class Param:
    """One searched key: `kind` over [low, high] (a step, a log scale), or one of `choices`."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.kind == "log_uniform")

    def extremes(self) -> list:
        """Values that stand for the whole range, to check against the config."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


def load_space(path: Path, base: Config) -> tuple[Param, ...]:
    """The search space in `path`, checked: every key one `--set` takes, every range's ends and every
    choice a value the config allows."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), f"--space {path}")
    except FileNotFoundError:
        raise UserError(f"--space {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"--space {path}: cannot read it as YAML ({str(err).splitlines()[0]})") from None
    return parse_space(raw, base, str(path))


def parse_space(raw, base: Config, where: str) -> tuple[Param, ...]:
    example = "e.g. train.learning_rate: {log_uniform: [1e-4, 1e-2]}"
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{where}: a search space is a mapping of config keys to ranges, {example}")
    space = tuple(parse_param(key, spec, where) for key, spec in raw.items())
    for param in space:
        for value in param.extremes():
            item = f"{param.key}={json.dumps(value)}"
            try:
                config_from_dict(to_dict(base), [item], source=where)
            except ConfigError as err:  # said of the space's key, not of a --set the user never typed
                message = str(err)
                own = f"{where}: {param.key}: {message.removeprefix(f'--set {item}: ')}"
                raise UserError(own if message.startswith(f"--set {item}: ") else
                                message.replace("--set ", f"{where}: ", 1) if message.startswith("--set ")
                                else message) from None
    return space


def parse_param(key, spec, where: str) -> Param:
    """One key's range: {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi], step: s, log: b},
    {choice: [a, b, ...]}."""
    at = f"{where}: {key}"
    kinds = [kind for kind in KINDS if isinstance(spec, dict) and kind in spec]
    if not isinstance(key, str) or not re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", key):
        raise UserError(f"{where}: {excerpt(key)} is not a config key as --set takes it (train.learning_rate)")
    if len(kinds) != 1:
        raise UserError(f"{at}: expected one of {', '.join(KINDS)}, e.g. {{log_uniform: [1e-4, 1e-2]}}; "
                        f"got {excerpt(spec)}")
    kind = kinds[0]
    extra = set(spec) - {kind, "step", "log"}
    if extra or (kind in ("choice", "log_uniform") and set(spec) - {kind}):
        raise UserError(f"{at}: unknown setting(s) {', '.join(map(str, sorted(extra or set(spec) - {kind})))} "
                        f"for {kind}")
    value = spec[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value or not all(
                v is None or isinstance(v, (bool, int, float, str)) for v in value):
            raise UserError(f"{at}: choice: expected a list of numbers, strings, booleans or null")
        return Param(key, kind, choices=tuple(value))
    number = int if kind == "int" else (int, float)
    if (not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(v, number) and not isinstance(v, bool) and is_finite(v) for v in value)
            or not value[0] < value[1]):
        what = "integers" if kind == "int" else "numbers"
        raise UserError(f"{at}: {kind}: expected [low, high], two finite {what} with low < high; got {excerpt(value)}")
    low, high = value
    if kind == "log_uniform" and low <= 0:
        raise UserError(f"{at}: log_uniform: the range must be above 0; got {excerpt(value)}")
    step, log = spec.get("step"), spec.get("log", False)
    if step is not None and (not isinstance(step, number) or isinstance(step, bool) or step <= 0):
        raise UserError(f"{at}: step: expected a number above 0; got {excerpt(step)}")
    if not isinstance(log, bool) or (log and (kind != "int" or low <= 0 or (step not in (None, 1)))):
        raise UserError(f"{at}: log: true needs int with low above 0 and no step")
    return Param(key, kind, low, high, step, log)


def space_to_raw(space: tuple[Param, ...]) -> dict:
    """The space as the YAML mapping it was read from (study.json keeps it)."""
    raw = {}
    for p in space:
        entry = {p.kind: list(p.choices) if p.kind == "choice" else [p.low, p.high]}
        if p.step is not None:
            entry["step"] = p.step
        if p.log:
            entry["log"] = True
        raw[p.key] = entry
    return raw
