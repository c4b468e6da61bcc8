"""rnn_cli.own_files: a user's own CSV, TSV, JSON Lines files and class folders, and one line for each
kind of bad row."""

import pytest

from rnn_cli.errors import DataError
from rnn_cli.own_files import class_order, read_class_folders, read_rows
from tests.conftest import topic_rows, write_class_folders, write_table


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_each_file_kind_reads_its_rows(tmp_path, suffix):
    rows = topic_rows(["sport", "music"], 3)
    read = read_rows(write_table(tmp_path / f"d{suffix}", rows), suffix[1:], "text", "label")
    assert list(zip(read.texts, read.labels)) == rows and read.empty == 0


def test_a_bom_crlf_and_quoted_newlines_are_valid_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes('\ufefftext,label\r\n"two\r\nlines, and a comma",music\r\n"say ""hi""",sport\r\n'.encode())
    read = read_rows(path, "csv", "text", "label")
    assert read.texts == ["two\r\nlines, and a comma", 'say "hi"'] and read.labels == ["music", "sport"]


def test_an_empty_text_is_skipped_and_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a goal", "label": 1}\n{"text": "  ", "label": 0}\n\n{"text": "a song", "label": 0}\n')
    read = read_rows(path, "jsonl", "text", "label")
    assert read.texts == ["a goal", "a song"] and read.labels == ["1", "0"] and read.empty == 1


@pytest.mark.parametrize("name, content, message", [
    ("d.csv", "review,stars\nnice,5\n", "d.csv: no column 'text'; the file has 'review', 'stars' (set data.text_column"),
    ("d.csv", "text,label\nnice,pos,extra\n", "d.csv, line 2: 3 field(s) where the header has 2"),
    ("d.csv", 'text,label\n"unclosed,pos\n', "d.csv, line 2: malformed row"),
    ("d.csv", "", "d.csv: empty file; expected a header row"),
    ("d.csv", "text,label\n", "d.csv: no rows with a text"),
    ("d.jsonl", '{"text": "ok", "label": 1}\n[1, 2]\n', "d.jsonl, line 2: a JSON list, not an object"),
    ("d.jsonl", '{"text": "ok", "label": 1}\n{"text": "ok"\n', "d.jsonl, line 2: not JSON"),
    ("d.jsonl", '{"body": "ok", "label": 1}\n', "d.jsonl, line 1: no key 'text'; the object has 'body', 'label'"),
    ("d.jsonl", '{"text": "ok", "label": [1]}\n', "d.jsonl, line 1: 'label' is [1]; labels are strings or integers"),
    # Labels and columns that would be silently wrong
    ("d.csv", "text,label\nnice,pos\nbad,\n", "d.csv, line 3: the label is empty; give every row a label"),
    ("d.tsv", "text\tlabel\nnice\t  \n", "d.tsv, line 2: the label is empty"),
    ("d.jsonl", '{"text": "ok", "label": ""}\n', "d.jsonl, line 1: the label is empty"),
    ("d.csv", "text,label,text\nnice,pos,bad\n", "d.csv: the header names column 'text' 2 times (columns 1, 3)"),
    ("d.tsv", "label\ttext\tlabel\tlabel\nnice\tpos\tx\ty\n", "the header names column 'label' 3 times"),
    ("d.jsonl", '{"text": "ok", "label": 1, "label": 2}\n', "d.jsonl, line 1: not JSON (the key 'label' appears 2"),
    # Inputs built to exhaust
    ("d.jsonl", '{"text": "ok", "label": 1}\n' + "[" * 5000 + "]" * 5000 + "\n", "d.jsonl, line 2: nested deeper than 64"),
    ("d.jsonl", '{"text": "ok", "label": ' + "[" * 100 + "]" * 100 + "}\n", "d.jsonl, line 1: nested deeper than 64"),
    ("d.jsonl", '{"text": "ok", "label": ["' + "x" * 100_000 + '"]}\n', "'label' is ['xxxxxxxx"),
    ("d.csv", "review," + "x" * 100_000 + "\nnice,5\n", "d.csv: no column 'text'; the file has 'review', 'xxxx"),
])
def test_bad_rows_are_one_line_naming_the_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_rows(tmp_path / name, name.split(".")[1], "text", "label")
    assert message in str(err.value) and "\n" not in str(err.value) and len(str(err.value)) < 400


def test_bytes_that_are_not_utf8_are_one_line(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\ncaf\xe9,pos\n")
    with pytest.raises(DataError, match="d.csv: not UTF-8 text"):
        read_rows(tmp_path / "d.csv", "csv", "text", "label")


def test_classes_are_sorted_numbers_first_and_the_positive_one_second(tmp_path):
    assert class_order(["10", "9", "10"], None, tmp_path) == ("9", "10")
    assert class_order(["pos", "neg"], None, tmp_path) == ("neg", "pos")
    assert class_order(["pos", "neg"], "neg", tmp_path) == ("pos", "neg")
    with pytest.raises(DataError, match="one class only \\('pos'\\)"):
        class_order(["pos", "pos"], None, tmp_path)
    with pytest.raises(DataError, match="only for two classes"):
        class_order(["a", "b", "c"], "a", tmp_path)
    # Digits that are not numbers Python reads: sorted as names, never an internal error
    assert class_order(["²", "1"], None, tmp_path) == ("1", "²")
    assert class_order(["--1", "2", "-3"], None, tmp_path) == ("--1", "-3", "2")
    assert class_order(["٣", "1"], None, tmp_path) == ("1", "٣")


def test_class_folders_read_each_split(tmp_path):
    root = write_class_folders(tmp_path / "d", topic_rows(["sport", "music", "food"], 4))
    (root / "train" / "food" / "notes.md").write_text("not a review")
    splits, skipped = read_class_folders(root, 1 << 20)
    assert sorted(set(splits["train"].labels)) == ["food", "music", "sport"] and skipped == 0
    assert len(splits["train"].texts) + len(splits["test"].texts) == 12
