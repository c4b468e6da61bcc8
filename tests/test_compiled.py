"""rnn_cli.compiled: the folder of compiled steps, per backend, version and CPU; off, or the user's own,
when asked; never a crash for a folder that cannot be used; pruned. (Two processes sharing one:
tests/test_train.py.)"""

import os
import subprocess
import sys
import time

from rnn_cli import compiled
from rnn_cli.compiled import COMPILE_CACHE, TF_CACHE_FLAG, compile_cache, prune


def test_compiled_steps_are_kept_per_backend_version_and_the_users_own_folder_wins(tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(compiled, "_COMPILE_CACHE", None)
    monkeypatch.setenv("RNN_CLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(COMPILE_CACHE, raising=False)
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    folder = compile_cache("tensorflow")
    assert folder == tmp_path / "cache" / "compiled" / f"tensorflow-{tf.__version__}-{compiled.machine_tag()}"
    assert folder.is_dir() and len(compiled.machine_tag()) == 8 and compiled.machine_tag() == compiled.machine_tag()
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {TF_CACHE_FLAG}={folder}"
    assert compiled.compile_cache_folder() == folder
    assert compile_cache("tensorflow") is None  # a folder already named (the user's, or this one) is kept
    assert os.environ["TF_XLA_FLAGS"].count(TF_CACHE_FLAG) == 1
    assert compile_cache("torch") is None  # nothing compiled there


def test_programs_compiled_under_other_xla_flags_are_kept_apart(monkeypatch):
    # TensorFlow's cache would load a step compiled under other flags (XLA's CPU emitters, chosen per model).
    tags = []
    for flags in ("", "--xla_cpu_use_fusion_emitters=true", "--xla_cpu_use_fusion_emitters=false",
                  "  --xla_cpu_use_fusion_emitters=false "):
        monkeypatch.setenv("XLA_FLAGS", flags)
        tags.append(compiled.flags_tag())
    assert tags[0] == "" and len({*tags[:3]}) == 3 and tags[2] == tags[3] and len(tags[1]) == 9


def test_no_compile_cache_when_off_unwritable_or_unsayable(tmp_path, monkeypatch):
    monkeypatch.setattr(compiled, "_COMPILE_CACHE", None)
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    monkeypatch.setenv(COMPILE_CACHE, "off")
    assert compile_cache("tensorflow") is None
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(COMPILE_CACHE, str(tmp_path / "file"))  # a file: never a folder
    assert compile_cache("tensorflow") is None
    monkeypatch.setenv(COMPILE_CACHE, str(tmp_path / "with space"))  # TF_XLA_FLAGS would split the path
    assert compile_cache("tensorflow") is None
    assert os.environ["TF_XLA_FLAGS"] == "" and compiled.compile_cache_folder() is None


def test_prune_drops_the_oldest_entries_beyond_the_limit_and_stale_temporary_files(tmp_path):
    now = time.time()
    for age, name in enumerate(["new.pb", "mid.pb", "old.pb", "fresh.pb.tmp123", "stale.pb.tmp456"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        seconds = compiled.STALE_SECONDS + 10 if name.startswith("stale") else age * 60
        os.utime(tmp_path / name, (now - seconds, now - seconds))
    prune(tmp_path, limit=250)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.pb.tmp123", "mid.pb", "new.pb"]
    prune(tmp_path, limit=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.pb.tmp123"]  # another process may be writing it


def test_jax_without_filelock_keeps_its_steps_with_no_size_limit(tmp_path):
    script = ("import sys\nsys.modules['filelock'] = None  # as where it is not installed\n"
              "import jax, jax.numpy as jnp\nfrom rnn_cli.compiled import compile_cache\n"
              "print(compile_cache('jax') is not None, jax.config.jax_compilation_cache_max_size)\n"
              "print(float(jax.jit(lambda x: (x @ x.T).sum())(jnp.ones((300, 300)))))\n")
    env = {**os.environ, "RNN_CLI_COMPILE_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["True -1", "27000000.0"]
