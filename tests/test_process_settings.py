"""rnn_cli.process_settings: the device, and the memory settings, added once and never over a user's own."""

import os
import platform
import subprocess
import sys

from rnn_cli import process_settings as process
from rnn_cli.config import LayerConfig, ModelConfig, TrainConfig
from rnn_cli.process_settings import EMITTERS_FLAG, choose_emitters, few_malloc_arenas
from tests.conftest import invoke


def test_xla_emitters_follow_the_step_and_the_table_once_and_keep_the_users_own(monkeypatch):
    small = ModelConfig()  # the shipped SimpleRNN(32): at batch 32, 65,536 multiply-adds a step
    large = ModelConfig(layers=(LayerConfig(type="lstm", units=32),))  # the shipped LSTM's, at batch 128: 2^20
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    assert choose_emitters(small, 32, 10000) is True  # a table of 320,000 numbers
    assert choose_emitters(large, 128, 10000) is None  # set once: XLA reads its flags at the first compilation
    assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {EMITTERS_FLAG}=true"
    # A large step, a small table (the tests' tiny models: compiling is most of their time), or no training:
    for model, batch, words in ((large, 128, 10000), (small, 1024, 10000), (small, 32, 4000), (None, 32, 10000)):
        monkeypatch.delenv("XLA_FLAGS")
        assert choose_emitters(model, batch, words) is False and os.environ["XLA_FLAGS"] == f"{EMITTERS_FLAG}=false"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert choose_emitters(large, 128, 10000) is None
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


def test_a_small_recurrent_step_runs_on_one_thread_a_large_one_on_tensorflows_own(monkeypatch):
    from rnn_cli.config import LayerConfig, ModelConfig, load_config

    works = {name: process.step_work(load_config(f"configs/{name}.yaml").model, load_config(f"configs/{name}.yaml")
                                     .train.batch_size) for name in ("simple_rnn", "lstm", "best")}
    assert works == {"simple_rnn": 32 * 64 * 32, "lstm": 128 * 64 * 4 * 32, "best": 64 * 64 * 3 * 32 * 2}
    small, large = (ModelConfig(layers=(LayerConfig("lstm", units),)) for units in (32, 512))
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert process.one_thread_for_small_steps(large, 32) is None  # TensorFlow's own count, untouched
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    assert process.one_thread_for_small_steps(small, 32) is None  # the user's own count wins
    # One thread is set before TensorFlow's runtime starts: in a process of its own.
    script = ("import tensorflow as tf\nfrom rnn_cli import process_settings as process\nfrom rnn_cli.config import ModelConfig, "
              "LayerConfig, TrainConfig\nmodel = ModelConfig(layers=(LayerConfig('lstm', 32),))\n"
              "process.configure(TrainConfig(), 'cpu', model)\n"
              "print(process.threads(), tf.config.threading.get_intra_op_parallelism_threads())\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split("\n")[-2] == "1 1", done.stderr[-2000:]


PROBED_LOADED = "print(sorted(set(process.PROBED) & set(sys.modules)), 'keras' in sys.modules, file=sys.__stdout__)"


def printed(script: str, **env) -> list[str]:
    """The lines a Python process running `script` prints (PROBED_LOADED's, say)."""
    setup = "import atexit, sys\nfrom rnn_cli import process_settings as process\n"
    done = subprocess.run([sys.executable, "-c", setup + script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_keras_loads_without_the_libraries_it_only_probes_for_and_they_load_after():
    skipped = f"process.skip_probed_imports()\nimport keras\n{PROBED_LOADED}\n"
    probes = ("from keras.src.trainers.data_adapters import array_slicing\nfrom keras.src.wrappers import fixes\n"
              "print(array_slicing.pandas, fixes.sklearn)\n")
    # Keras asked for pandas and scikit-learn, found them missing; installed (make test installs every extra),
    # they load as usual after.
    assert printed(skipped + probes + f"import jax, pandas, sklearn\n{PROBED_LOADED}") == [
        "[] True", "None None", "['jax', 'pandas', 'sklearn'] True"]
    # Never the backend Keras loads; and PyTorch's compiler, which asks importlib.util.find_spec about them while
    # it loads with Keras, gets the truth there (an error would end the process).
    assert printed(skipped, KERAS_BACKEND="jax") == ["['jax'] True"]
    assert printed(skipped, KERAS_BACKEND="torch") == ["[] True"]


def test_rnns_own_process_loads_keras_without_them(tiny_config):
    command = (f"atexit.register(lambda: {PROBED_LOADED})\nfrom rnn_cli.cli import run\n"
               f"sys.argv = ['rnn', 'summary', '--config', {str(tiny_config)!r}]\nrun()\n")
    assert printed(command)[-1] == "[] True"
