"""A trained run as files other programs load without rnn-cli.

- `saved_model`: a TensorFlow SavedModel that takes raw text. The tokeniser, the vocabulary, the start
  token, truncation and padding are TensorFlow ops inside it (`rnn_cli.encoding`'s TensorFlow side), so it scores a text exactly as
  `rnn predict` does; written in TensorFlow Serving's layout (`OUT/<version>/`).
- `onnx`, `litert`: the token-id model, for ONNX Runtime and the LiteRT interpreter, with
  `vocab.json` and a README beside it that says (and shows, in Python) how a client encodes text.

Every export is loaded back and checked against the Keras model before it is called done: Keras'
own exports of text models have failed to reload (keras#16029, #19396).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from rnn_cli import loading, runs
from rnn_cli.card import write_card
from rnn_cli.corpus import Reviews, Vocabulary
from rnn_cli.encoding import (FIRST_WORD, OOV, PAD, START, client_encoder, fixed_ids, padding_side, tf_ids,
                              tf_lower_table, tf_padded, tf_vocabulary_table, tf_words)
from rnn_cli.errors import UserError, require_extra
from rnn_cli.files import make_dir, temporary_folder
from rnn_cli.model import THRESHOLD, class_count, masks_padding
from rnn_cli.publish import check_destination, destination, publish

FORMATS = ("saved_model", "onnx", "litert")
SIGNATURE = "serving_default"
TOLERANCE = 1e-5  # largest difference in a probability the check accepts
EXTRA = {"onnx": ("tf2onnx", "onnxruntime"), "litert": ("ai_edge_litert",)}
FILES = {"onnx": "model.onnx", "litert": "model.tflite"}


def export_run(run_dir: Path, fmt: str, out: Path | None = None, echo=print, force: bool = False) -> Path:
    """Export the run's model in `fmt` to `out` (default RUN/export/<fmt>), check it, and return
    where it went: the version folder of a SavedModel, the folder of the others. `out` may be new, or an
    earlier export of rnn export's own; `force` replaces any other folder but a run's."""
    require_extra("export", *EXTRA.get(fmt, ()))
    out = destination(run_dir, fmt, out)
    replacing = check_destination(out, run_dir, force)
    trained = loading.Trained.load(run_dir)
    if not masks_padding(trained.model) and trained.config.data.bucketing:
        raise UserError(f"{run_dir}: trained on left-padded length buckets (JAX or PyTorch on a GPU, for "
                        "cuDNN), whose padding an export cannot reproduce yet; export a run trained on a CPU, "
                        "with TensorFlow, or with data.bucketing false")
    make_dir(out.parent)
    source = trained.source  # a seed group's files are its runs'
    texts = probe_texts(trained.vocabulary, trained.config.data.maxlen)
    expected = probabilities(trained, texts)
    with quiet_converters(), temporary_folder(out) as tmp:
        staging = tmp / "export"
        staging.mkdir()
        if fmt == "saved_model":
            write_saved_model(trained, staging)
            check(fmt, saved_model_probabilities(staging, texts), expected)
        else:
            ids = token_ids(trained, texts)
            model = inference_copy(trained.model, unrolled_to=trained.config.data.maxlen if fmt == "litert" else None)
            if fmt == "litert":
                echo(f"converting: the recurrent layers unrolled to {trained.config.data.maxlen} steps "
                     "(LiteRT's built-in ops have no loop); this takes a while for long maxlen")
            length = ids.shape[1] if fmt == "litert" else None
            model.export(str(staging / FILES[fmt]), format=fmt, verbose=False,
                         input_signature=[keras.InputSpec(shape=(None, length), dtype="int32", name="tokens")])
            check(fmt, RUNTIMES[fmt](staging / FILES[fmt], ids), expected)
            shutil.copyfile(source / runs.VOCABULARY, staging / runs.VOCABULARY)
            (staging / "README.md").write_text(client_readme(trained, fmt), encoding="utf-8")
        if (source / runs.CLASSES).exists():
            shutil.copyfile(source / runs.CLASSES, staging / runs.CLASSES)
        write_card(run_dir, staging / "MODEL_CARD.md")
        if replacing:
            echo(f"replacing {out} (--force): {replacing}")
        return publish(staging, out, versioned=fmt == "saved_model", run_dir=run_dir, fresh=bool(replacing))


@contextlib.contextmanager
def quiet_converters():
    """tf2onnx's and TensorFlow's Python warnings about their own internals are not the user's."""
    loggers = [logging.getLogger(name) for name in ("tensorflow", "tf2onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def probabilities(trained: loading.Trained, texts: list[str]) -> np.ndarray:
    """The Keras model's (n, classes) probabilities for `texts`, encoded as `rnn predict` encodes them."""
    return two_columns(trained.model.predict(token_ids(trained, texts), verbose=0))


def token_ids(trained: loading.Trained, texts: list[str]) -> np.ndarray:
    """(n, maxlen) token ids of `texts` as the token-id exports take them (`encoding.fixed_ids`)."""
    reviews = Reviews.from_lists([trained.vocabulary.encode(text)[0] for text in texts], np.zeros(len(texts)))
    return fixed_ids(reviews, trained.config.data, masks_padding(trained.model))


def probe_texts(vocabulary: Vocabulary, maxlen: int, count: int = 24) -> list[str]:
    """Texts to check an export on: the vocabulary's words in random orders and lengths, some longer
    than maxlen, with capitals, `<br />`, punctuation and unknown words."""
    rng = np.random.default_rng(0)
    words = [*vocabulary.words[:2000], "zzunknownzz"]
    texts = []
    for i in range(count):
        length = int(rng.integers(1, 2 * maxlen + 2 if i % 4 == 0 else min(maxlen, 60) + 1))
        picked = [words[j] for j in rng.integers(0, len(words), size=length)]
        picked[0] = picked[0].capitalize()
        texts.append(" ".join(picked[:length // 2]) + ".<br /><br />" + ", ".join(picked[length // 2:]) + "!")
    return texts


def check(fmt: str, got: np.ndarray, expected: np.ndarray) -> None:
    """Refuse an export whose reloaded model does not give the Keras model's probabilities."""
    worst = float(np.abs(got - expected).max())
    if not worst <= TOLERANCE:
        raise UserError(f"--format {fmt}: the exported model, loaded back, differs from the trained one by {worst:.2g} "
                        f"(more than {TOLERANCE}); nothing was written")


def inference_copy(model: keras.Model, unrolled_to: int | None = None) -> keras.Model:
    """The model rebuilt in float32 with its weights: what ONNX and LiteRT take. `unrolled_to`: with
    a fixed input length and every recurrent layer unrolled, so LiteRT needs no loop ops."""
    config = model.get_config()

    def rewrite(node):
        if isinstance(node, dict):
            if "dtype" in node and isinstance(node["dtype"], dict):  # a mixed precision policy
                node["dtype"] = "float32"
            if unrolled_to and "unroll" in node:
                node["unroll"] = True
            if unrolled_to and node.get("class_name") == "InputLayer":  # a seed group's members' inputs too
                node["config"]["batch_shape"] = [None, unrolled_to]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(config)
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def onnx_probabilities(path: Path, ids: np.ndarray) -> np.ndarray:
    import onnxruntime

    runtime = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return two_columns(runtime.run(None, {runtime.get_inputs()[0].name: ids})[0])


def litert_probabilities(path: Path, ids: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tokens = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(tokens["index"], ids.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(tokens["index"], ids)
    interpreter.invoke()
    return two_columns(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


RUNTIMES = {"onnx": onnx_probabilities, "litert": litert_probabilities}


def two_columns(p: np.ndarray) -> np.ndarray:
    """A sigmoid head's (n, 1) output as both classes' probabilities."""
    return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p


def saved_model_probabilities(path: Path, texts: list[str]) -> np.ndarray:
    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    return serve(texts=tf.constant(texts))["probabilities"].numpy()


# The SavedModel's text pipeline ------------------------------------------------------------------

def write_saved_model(trained: loading.Trained, out: Path) -> None:
    """The model with the tokeniser, vocabulary, truncation and padding in front, as one signature:
    `serving_default`, a string tensor `texts` of shape [batch] to `probability`, `probabilities`,
    `label`, `words`, `known_words` and `truncated`."""
    vocabulary, lower = tf_vocabulary_table(list(trained.vocabulary.words)), tf_lower_table()
    model, data = trained.model, trained.config.data
    classes = tf.constant(trained.classes)
    masked, count = masks_padding(model), class_count(model)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(texts):  # rnn_cli/encoding.py's steps as TensorFlow ops, then the model
        tokens = tf_words(texts, lower)
        ids, word_ids = tf_ids(tokens, vocabulary)
        x = tf_padded(ids, data, masked)
        p = tf.cast(model(tf.cast(x, tf.int32), training=False), tf.float32)
        if count == 2:
            p = tf.concat([1 - p, p], axis=1)
            label, probability = tf.gather(classes, tf.cast(p[:, 1] >= THRESHOLD, tf.int32)), p[:, 1]
        else:
            label, probability = tf.gather(classes, tf.argmax(p, axis=1)), tf.reduce_max(p, axis=1)
        return {"probability": probability, "probabilities": p, "label": label, "words": tokens.row_lengths(),
                "known_words": tf.reduce_sum(tf.cast(tf.not_equal(word_ids, OOV), tf.int64), axis=1),
                "truncated": tokens.row_lengths() + 1 > data.maxlen}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(vocabulary)
    archive.track(lower)
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(str(out), verbose=False)


# The client's note for the token-id formats -------------------------------------------------------

def client_readme(trained: loading.Trained, fmt: str) -> str:
    """How a client turns text into the model's input, with runnable Python for `fmt`."""
    data = trained.config.data
    padding = padding_side(data, masks_padding(trained.model), bucketed=False)
    classes = list(trained.classes)
    output = ("one column: the probability of " + classes[1] if class_count(trained.model) == 2
              else f"{len(classes)} columns, one probability per class")
    run = {"onnx": ['import onnxruntime', '',
                    'runtime = onnxruntime.InferenceSession("model.onnx")',
                    'probabilities = runtime.run(None, {"tokens": tokens})[0]'],
           "litert": ['from ai_edge_litert.interpreter import Interpreter', '',
                      'interpreter = Interpreter(model_path="model.tflite")',
                      'index = interpreter.get_input_details()[0]["index"]',
                      'interpreter.resize_tensor_input(index, tokens.shape)',
                      'interpreter.allocate_tensors()',
                      'interpreter.set_tensor(index, tokens)',
                      'interpreter.invoke()',
                      'probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])']}[fmt]
    code = ['import json', 'import re', '', 'import numpy as np', *run[:1], '',
            f'MAXLEN = {data.maxlen}  # tokens the model reads', 'vocabulary = json.load(open("vocab.json", encoding="utf-8"))',
            'index = {word: i + vocabulary["first_word"] for i, word in enumerate(vocabulary["words"])}', '', '',
            *client_encoder(data, masks_padding(trained.model)), '', '',
            'texts = ["A moving, beautifully acted film.", "Two hours I will never get back."]',
            'tokens = np.array([encode(text) for text in texts], dtype=np.int32)', *run[1:],
            f'print(json.dumps(probabilities.tolist()))  # {output}']
    name = FILES[fmt]
    return "\n".join([
        f"# {trained.config.name}: {name}", "",
        f"`{name}` is the token-id model of an rnn-cli run: it takes an int32 matrix (batch, {data.maxlen}) of "
        f"token ids and gives {output} ({', '.join(classes)}; `classes.json`). `MODEL_CARD.md` says what it was "
        "trained on and how well it does.", "",
        "A client encodes each text as training did:", "",
        "1. replace every `<br />` (any case, optional spaces and slash) with a space, and lower-case the text;",
        "2. split it into words: runs of letters or digits (any script), apostrophes kept inside a word "
        "(`don't`), everything else separates (Python: `re.findall(r\"[^\\W_]+(?:'[^\\W_]+)*\", text)`);",
        f"3. map each word to its id, `vocab.json`'s `words[i]` being id `i + {FIRST_WORD}`, a word not there "
        f"{OOV} (unknown), and put {START} (start) in front;",
        f"4. keep the {'last' if data.truncating == 'pre' else 'first'} {data.maxlen} ids, and pad with {PAD} "
        f"{'after' if padding == 'post' else 'before'} them to {data.maxlen}"
        + (" (the model skips the zeros: it masks padding)." if padding == "post" else "."), "",
        "In Python, next to these files:", "", "```python", *code, "```", ""])
