"""Which device trains: `auto` takes a GPU when TensorFlow sees one, `cpu` hides GPUs."""

from __future__ import annotations

from rnn_cli.errors import UserError

CHOICES = ("auto", "cpu", "gpu")


def select_device(choice: str) -> str:
    """Make TensorFlow use the chosen device and say which: "cpu" or "gpu:<name>".

    Must run before TensorFlow places any op: hiding GPUs is impossible afterwards.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UserError("--device gpu: TensorFlow sees no GPU on this machine (is a CUDA build of "
                        "TensorFlow installed, e.g. tensorflow[and-cuda]?); use --device cpu or auto")
    if choice == "cpu" or not gpus:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "cpu"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"gpu:{details.get('device_name', gpus[0].name)}"
