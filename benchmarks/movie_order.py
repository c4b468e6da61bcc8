"""Are aclImdb's reviews numbered movie by movie? The evidence behind `validation_by: movie`.

aclImdb names no movie. If each label's reviews are numbered movie by movie, two reviews with
consecutive numbers are often of the same movie and share its rare names (actors, characters,
the title); two random reviews almost never do. For every label of the training split this prints
how often two consecutive reviews share a rare capitalised word (used by `--rare` reviews or fewer),
against as many random pairs:

    python benchmarks/movie_order.py --data ../shared/data/aclImdb_v1_labeled.tar.gz
"""

from __future__ import annotations

import argparse
import collections
import random
import re
from pathlib import Path

from rnn_cli.aclimdb import NUMBERED_FILE, iter_review_files

NAME = re.compile(r"\b[A-Z][a-z]{3,}\b")  # a capitalised word of four letters or more


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/aclImdb_v1_labeled.tar.gz"))
    parser.add_argument("--rare", type=int, default=40, help="a name is rare if this many reviews or fewer use it")
    args = parser.parse_args()
    names = {}  # (label, number) -> the capitalised words of that training review
    for split, label, file, raw in iter_review_files(args.data):
        if split == "train" and (match := NUMBERED_FILE.fullmatch(file)):
            names[label, int(match[1])] = set(NAME.findall(raw.decode("utf-8", errors="replace")))
    used_by = collections.Counter(word for words in names.values() for word in words)
    rare = {key: {w for w in words if used_by[w] <= args.rare} for key, words in names.items()}
    rng = random.Random(0)
    for label in ("pos", "neg"):
        numbers = sorted(number for lab, number in rare if lab == label)
        pairs = {"consecutive": list(zip(numbers, numbers[1:])),
                 "random": [rng.sample(numbers, 2) for _ in numbers[1:]]}
        shares = {kind: sum(bool(rare[label, a] & rare[label, b]) for a, b in found) / len(found)
                  for kind, found in pairs.items()}
        print(f"{label}: {len(numbers)} reviews; pairs sharing a rare name: "
              f"consecutive {shares['consecutive']:.1%}, random {shares['random']:.1%}")


if __name__ == "__main__":
    main()
