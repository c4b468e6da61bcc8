"""What XLA's CPU emitters make of the optimizer's update of an embedding table: milliseconds per call of
one XLA-compiled update of a 10,000 x 32 variable, `w -= 1e-3 * f(g, v)` for several `f`, each emitter in a
process of its own (XLA reads its flags once). RMSprop's and Adam's updates divide by a square root over
every row of the table; the classic emitters compile that several times slower than the fusion emitters
(docs/performance.md#xlas-emitters).

    python benchmarks/emitters.py
"""

from __future__ import annotations

import os
import subprocess
import sys

FORMS = ("mul", "div", "sqrt_mul", "rsqrt", "div_sqrt")


def child(repeats: int = 5, calls: int = 100) -> None:
    """Time each form in this process, under the XLA_FLAGS it was started with."""
    from timing import median_seconds

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # as `rnn train` runs a small step
    g = tf.random.normal((10000, 32))
    w, v = tf.Variable(tf.random.normal((10000, 32))), tf.Variable(tf.random.uniform((10000, 32)))
    forms = {"mul": lambda: g * (v + 1e-7), "div": lambda: g / (v + 1e-7), "sqrt_mul": lambda: g * tf.sqrt(v + 1e-7),
             "rsqrt": lambda: g * tf.math.rsqrt(v + 1e-7), "div_sqrt": lambda: g / tf.sqrt(v + 1e-7)}
    cells = []
    for name in FORMS:
        update = tf.function(lambda form=forms[name]: w.assign_sub(1e-3 * form()), jit_compile=True)
        update(), update()  # compile
        cells.append(f"{median_seconds(update, calls, repeats) * 1e3:.3f}")
    print(" | ".join(cells))


def main() -> None:
    print("| emitters | " + " | ".join(f"`{name}`" for name in FORMS) + " |")
    print("| --- |" + " --- |" * len(FORMS))
    for fusion in ("false", "true"):
        env = {**os.environ, "XLA_FLAGS": f"--xla_cpu_use_fusion_emitters={fusion}"}
        line = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]
        print(f"| {'fusion' if fusion == 'true' else 'classic'} | {line} |", flush=True)


if __name__ == "__main__":
    child() if sys.argv[1:] == ["--child"] else main()
