"""rnn_cli.process: the device, and the memory settings, added once and never over a user's own."""

import os
import platform

from rnn_cli import process
from rnn_cli.config import TrainConfig
from rnn_cli.process import LEAN_XLA_CPU_FLAG, few_malloc_arenas, lean_xla
from tests.conftest import invoke


def test_lean_xla_adds_its_flag_once_and_keeps_the_users_own(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    lean_xla()
    lean_xla()
    assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {LEAN_XLA_CPU_FLAG}"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    lean_xla()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_use_fusion_emitters=true"


def test_malloc_arenas_are_capped_on_glibc_unless_the_user_set_them(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert few_malloc_arenas() == (platform.libc_ver()[0] == "glibc")  # there mallopt accepted it
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not few_malloc_arenas()


def test_the_arena_cap_is_for_cpu_trainings_only(monkeypatch):
    capped = []
    monkeypatch.setattr(process, "few_malloc_arenas", lambda: capped.append(True))
    monkeypatch.setattr(process, "select_device", lambda choice, backend: "gpu:NVIDIA H100")
    assert process.configure(TrainConfig(), "gpu") == "gpu:NVIDIA H100"
    assert capped == []
    monkeypatch.setattr(process, "select_device", lambda choice, backend: "cpu")
    process.configure(TrainConfig(), "cpu")
    assert capped == [True]


def test_gpu_without_a_gpu_is_a_clear_error(tmp_path, tiny_config, imdb_archive, monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # as on a machine without one
    result = invoke("train", "--config", tiny_config, "--data", imdb_archive, "--run", tmp_path / "r",
                    "--device", "gpu")
    assert result.exit_code == 2
    assert "--device gpu: TensorFlow sees no GPU" in result.output
    assert not (tmp_path / "r").exists()
