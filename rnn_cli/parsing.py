"""YAML and JSON that a user or a client hands over, read within bounds, and short excerpts of what is rejected.

Every reader of such text goes through here: config files, `--set` values, tune spaces, JSON Lines rows, a
run's JSON files, HTTP bodies. A document nested deeper than MAX_DEPTH, or a YAML file whose aliases
("billion laughs": `&a [*b, *b, ...]` built on itself) expand past MAX_VALUES, is refused in one line
before anything walks it: both otherwise end in Python's recursion limit, or in hours of walking and a
message of megabytes.
"""

from __future__ import annotations

import collections
import json
import math
import re

import yaml

from rnn_cli.errors import UserError

MAX_DEPTH = 64  # levels of nesting; a config has four, a predict body three
MAX_VALUES = 100_000  # values in a YAML document once its aliases are expanded; a config has about sixty
EXCERPT = 60  # characters of a rejected value quoted in a message


class TooLarge(UserError):
    """A document nested too deeply or too large once expanded; the message names where."""


def excerpt(value, limit: int = EXCERPT) -> str:
    """`repr(value)`, cut to about `limit` characters: a message never quotes more of what it rejects."""
    if isinstance(value, (list, tuple, dict)):
        try:
            check_shape(value, "", expanded=True)
        except TooLarge:  # its repr alone could take hours
            return f"a {type(value).__name__} of {len(value):,} item(s)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def is_finite(number: int | float) -> bool:
    """Whether a number read from YAML or JSON is finite as a float (an integer of 400 digits is not)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def load_yaml(text: str, where: str):
    """The YAML in `text` (safe types only), or a TooLarge / yaml.YAMLError; `where` names it in messages."""
    loader = _BoundedLoader(text, where)
    try:
        value = loader.get_single_data()
    finally:
        loader.dispose()
    check_shape(value, where, expanded=True)
    return value


def load_json(text: str | bytes, where: str, unique_keys: bool = False):
    """The JSON in `text`, or a TooLarge (nested past MAX_DEPTH) / ValueError (not JSON; with `unique_keys`, an
    object naming a key twice, of which JSON keeps the last without a word)."""
    try:
        value = json.loads(text, object_pairs_hook=_unique if unique_keys else None)
    except RecursionError:
        raise TooLarge(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    check_shape(value, where)
    return value


def check_shape(value, where: str, expanded: bool = False) -> None:
    """TooLarge if `value` nests deeper than MAX_DEPTH, or (`expanded`: a YAML document, whose aliases share
    values) holds more than MAX_VALUES values; walked without recursion, stopping at the first excess."""
    stack, seen = [(value, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH:
            raise TooLarge(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if expanded and seen > MAX_VALUES:
            raise TooLarge(f"{where}: more than {MAX_VALUES:,} values once its aliases (*name) are expanded")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for pair in node.items() for child in pair)
        elif isinstance(node, (list, tuple)):
            stack.extend((child, depth + 1) for child in node)


def _unique(pairs: list[tuple]) -> dict:
    found = dict(pairs)
    if len(found) < len(pairs):
        twice = collections.Counter(key for key, _ in pairs).most_common(1)[0]
        raise ValueError(f"the key {excerpt(twice[0])} appears {twice[1]} times in one object")
    return found


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting past MAX_DEPTH while it composes (its composer recurses)."""

    def __init__(self, text: str, where: str):
        super().__init__(text)
        self.where, self.depth = where, 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise TooLarge(f"{self.where}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# YAML 1.2's floats: PyYAML (YAML 1.1) reads 1e-3, with no dot, as a string.
_BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d[\d_]*)?(\.\d*)?[eE][-+]?\d+$"),
                                     list("-+0123456789."))

