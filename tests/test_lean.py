"""Process-wide memory settings: added once, never over a user's own."""

import os
import platform

from rnn_cli.lean import LEAN_XLA_CPU_FLAG, few_malloc_arenas, lean_xla


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
    import rnn_cli.lean as lean

    capped = []
    monkeypatch.setattr(lean, "few_malloc_arenas", lambda: capped.append(True))
    lean.lean_process("gpu:NVIDIA H100")
    assert capped == []
    lean.lean_process("cpu")
    assert capped == [True]
