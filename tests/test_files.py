"""rnn_cli.files: a write is whole or absent, never half; the temporary file never stays."""

import os
import signal
import tempfile

import pytest

from rnn_cli import files, stopping
from rnn_cli.files import atomic_path, read_json, temporary_folder, write_json
from rnn_cli.errors import UserError


def test_a_finished_write_replaces_the_file_with_a_plain_files_permissions(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    write_json(target, {"status": "finished"})
    assert read_json(target) == {"status": "finished"}
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".keras")  # writers that go by the suffix
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_two_writers_of_one_file_get_their_own_temporary_files(tmp_path):
    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        assert first != second


def test_unreadable_json_is_a_users_error_naming_the_file(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="run.json: cannot read"):
        read_json(tmp_path / "run.json")
    with pytest.raises(UserError, match="nope.json: no such file"):
        read_json(tmp_path / "nope.json")


def test_a_stop_while_the_temporary_file_is_made_leaves_none(tmp_path, monkeypatch):
    made, mkstemp = [], tempfile.mkstemp

    def mkstemp_then_stop(*args, **options):
        handle_and_name = mkstemp(*args, **options)
        made.append(handle_and_name[1])
        signal.raise_signal(signal.SIGTERM)  # its handler runs as soon as Python can: before `tmp` names the file
        return handle_and_name

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp_then_stop)
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals():
        with atomic_path(tmp_path / "history.json") as tmp:
            tmp.write_text("{}")
    assert made and list(tmp_path.iterdir()) == []


def test_a_stop_while_a_temporary_folder_is_made_leaves_none(tmp_path, monkeypatch):
    with temporary_folder(tmp_path / "export") as tmp:  # without a stop: gone at the end, its contents too
        assert tmp.parent == tmp_path and tmp.name.startswith(".export.")
        (tmp / "inner").mkdir()
    assert list(tmp_path.iterdir()) == []
    made, mkdtemp = [], tempfile.mkdtemp

    def mkdtemp_then_stop(*args, **options):
        made.append(mkdtemp(*args, **options))
        signal.raise_signal(signal.SIGTERM)  # before `tmp` names the folder
        return made[-1]

    monkeypatch.setattr(files.tempfile, "mkdtemp", mkdtemp_then_stop)
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals():
        with temporary_folder(tmp_path / "export") as tmp:
            (tmp / "model.onnx").write_text("half")
    assert made and list(tmp_path.iterdir()) == []
