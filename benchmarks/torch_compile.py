"""Why rnn-cli refuses train.jit_compile: true on PyTorch: Keras' jit_compile there is torch.compile,
which compiles every new batch shape. A tiny masked LSTM, twelve batches of three lengths, two epochs,
with and without it (each in its own process):

    python benchmarks/torch_compile.py
"""

import os
import subprocess
import sys
import time

CHILD = "--child"


def child(jit: bool) -> None:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(100, 8, mask_zero=True),
                              keras.layers.LSTM(8), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy", jit_compile=jit)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return np.random.randint(1, 100, (8, (16, 32, 48)[i % 3])).astype("int32"), np.ones(8, "float32")

    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        model.fit(Batches(), epochs=1, verbose=0)
        seconds.append(time.perf_counter() - started)
    print(f"jit_compile={jit}: first epoch {seconds[0]:.2f} s, second {seconds[1]:.2f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        child(sys.argv[2] == "true")
    else:
        for jit in ("false", "true"):
            subprocess.run([sys.executable, __file__, CHILD, jit], check=True,
                           env={**os.environ, "KERAS_BACKEND": "torch"}, stderr=subprocess.DEVNULL)
