"""Does an exported or served model say what `rnn predict` says, on real reviews?

1. The SavedModel's tokeniser (TensorFlow string ops) against `encoding.tokenize` on every review of
   the archive, train and test.
2. On --reviews test reviews, with made-up edge cases added (empty, no known word, several reviews
   joined so they run far past maxlen, non-ASCII): `rnn predict`'s probabilities against the
   SavedModel's (loaded in a process that cannot import rnn_cli), `rnn serve`'s (a real server
   process, over HTTP), and the ONNX and LiteRT models' (on token ids) against the Keras model's.

    python benchmarks/parity.py --run runs/simple_rnn-... --data ../shared/data/aclImdb_v1_labeled.tar.gz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import DEFAULT_DATA, start_server  # noqa: E402

EDGE_CASES = ["", "zzqx qqzv", "ÉNORME déception, naïve, 東京, Ελληνικά ΟΔΟΣ; don't’s", "<BR/>Great<br >film",
              "\x00\tgreat\u2028film\u00a0ever"]


def tokeniser_parity(data: Path) -> dict:
    import tensorflow as tf

    from rnn_cli.aclimdb import iter_review_files
    from rnn_cli.encoding import tf_lower_table, tf_words, tokenize

    texts = [raw.decode("utf-8") for _, _, _, raw in iter_review_files(data) if raw]
    lower = tf_lower_table()
    differ = 0
    for start in range(0, len(texts), 2000):
        chunk = texts[start:start + 2000]
        words = tf_words(tf.constant(chunk), lower).to_list()
        differ += sum([w.decode() for w in got] != tokenize(text) for got, text in zip(words, chunk))
    return {"reviews": len(texts), "differ": differ}


def differences(got: np.ndarray, want: np.ndarray) -> str:
    gap = np.abs(got - want)
    return (f"max |difference| {gap.max():.2e}, 99th percentile {np.quantile(gap, 0.99):.2e}, "
            f"{int((gap > 1e-5).sum())} of {len(gap)} over 1e-5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reviews", type=int, default=2000)
    args = parser.parse_args()
    import httpx

    from rnn_cli import loading
    from rnn_cli.export import export_run, probabilities, token_ids
    from rnn_cli.export import onnx_probabilities, litert_probabilities
    from rnn_cli.predict import predict_texts
    from serve import test_reviews

    print("tokeniser, every review:", json.dumps(tokeniser_parity(args.data)), flush=True)
    reviews = test_reviews(args.data, args.reviews)
    texts = reviews + EDGE_CASES + [" ".join(reviews[i:i + 8]) for i in range(0, 80, 8)]
    trained = loading.Trained.load(args.run)
    predicted = predict_texts(trained, texts)
    scored = [i for i, r in enumerate(predicted) if r["probability"] is not None]
    want = np.array([predicted[i]["probability"] for i in scored])
    print(f"texts: {len(texts)} ({len(reviews)} test reviews), {len(scored)} scored by rnn predict, "
          f"{sum(r['truncated'] for r in predicted)} longer than maxlen")
    # float32's own noise: the same model on the same texts, batched otherwise (one text at a time).
    alone = np.array([r["probability"] for r in predict_texts(trained, texts, batch_size=1)])[scored]
    print(f"rnn predict, one text at a time vs 256: {differences(alone, want)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for fmt in ("saved_model", "onnx", "litert"):
            started = time.perf_counter()
            export_run(args.run, fmt, out / fmt, echo=lambda line: None)
            print(f"export {fmt}: {time.perf_counter() - started:.1f} s", flush=True)
        (out / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        script = ("import sys; sys.modules['rnn_cli'] = None\nimport json, tensorflow as tf\n"
                  f"serve = tf.saved_model.load({str(out / 'saved_model' / '1')!r}).signatures['serving_default']\n"
                  f"texts = json.load(open({str(out / 'texts.json')!r}))\n"
                  "keys = ('probability', 'words', 'known_words', 'truncated')\n"
                  "outs = [serve(texts=tf.constant(texts[i:i + 256])) for i in range(0, len(texts), 256)]\n"
                  "print(json.dumps({k: [v for out in outs for v in out[k].numpy().tolist()] for k in keys}))")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        columns = json.loads(done.stdout.splitlines()[-1])
        same = all(columns[key] == [r[key] for r in predicted] for key in ("words", "known_words", "truncated"))
        print(f"SavedModel vs rnn predict: words, known words and truncation equal for every text: {same}")
        print(f"SavedModel vs rnn predict: {differences(np.array(columns['probability'])[scored], want)}")
        process, url = start_server(args.run, batching=True)
        try:
            served = [p["probability"] for i in range(0, len(texts), 256) for p in httpx.post(
                f"{url}/v1/models/{trained.config.name}:predict", json={"instances": texts[i:i + 256]},
                timeout=120).json()["predictions"]]
        finally:
            process.terminate()
            process.wait(timeout=60)
        assert [i for i, p in enumerate(served) if p is not None] == scored
        print(f"rnn serve vs rnn predict: {differences(np.array(served)[scored], want)}")
        ids = token_ids(trained, texts)
        expected = probabilities(trained, texts)
        for fmt, runtime, name in (("onnx", onnx_probabilities, "model.onnx"),
                                   ("litert", litert_probabilities, "model.tflite")):
            got = np.concatenate([runtime(out / fmt / name, ids[i:i + 256]) for i in range(0, len(ids), 256)])
            print(f"{fmt} vs Keras on token ids: {differences(got[:, 1], expected[:, 1])}")


if __name__ == "__main__":
    main()
