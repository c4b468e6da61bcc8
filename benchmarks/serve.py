"""rnn serve under load: requests per second and p50 / p99 latency at 1, 8 and 32 concurrent clients,
single texts and batches of 32, with requests batched together and without; next to the same texts
scored in-process (the server's own call, and Keras' `model.predict`). Then 8 clients predicting while
--explainers clients ask `/v1/explain` for the longest reviews back to back: predict's latency with and
without them.

The server is a real `rnn serve` process on a loopback port; the clients are one asyncio process
(httpx), each client sending its next request as soon as the last is answered, for --seconds each.
The texts are test reviews of the aclImdb archive:

    python benchmarks/serve.py --run runs/simple_rnn-... --data ../shared/data/aclImdb_v1_labeled.tar.gz
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"


def test_reviews(data: Path, count: int) -> list[str]:
    """`count` test reviews spread over the archive's test split (both classes)."""
    from rnn_cli.aclimdb import iter_review_files

    texts = [raw.decode("utf-8") for split, _, _, raw in iter_review_files(data) if split == "test" and raw]
    step = max(len(texts) // count, 1)
    return texts[::step][:count]


def start_server(run_dir: Path, batching: bool) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "rnn_cli.cli", "serve", "--run", str(run_dir), "--port", "0"]
    process = subprocess.Popen(command + ([] if batching else ["--no-batching"]), stdout=subprocess.PIPE, text=True)
    url = re.search(r"at (http://\S+)/ ", process.stdout.readline())[1]
    return process, url


async def explain_load(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    """Clients asking /v1/explain for `texts` back to back for `seconds`: answers per second, and how many the
    server turned away (503: its explain queue was full)."""
    import httpx

    counts = {"answered": 0, "busy": 0}
    deadline = time.perf_counter() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        k = i
        while time.perf_counter() < deadline:
            response = await http.post(f"{url}/v1/explain", json={"text": texts[k % len(texts)]})
            counts["answered" if response.status_code == 200 else "busy"] += 1
            assert response.status_code in (200, 503), response.text
            k += clients

    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return {"explains_per_second": counts["answered"] / seconds, "explains_refused": counts["busy"]}


async def load_beside_explains(url: str, model: str, bodies: list[dict], texts: list[str], explainers: int,
                               seconds: float) -> dict:
    """8 predicting clients, with `explainers` explaining clients beside them."""
    predicting = load(url, model, bodies, 8, seconds)
    if not explainers:
        return await predicting
    figures, explained = await asyncio.gather(predicting, explain_load(url, texts, explainers, seconds))
    return {**figures, **explained}


async def load(url: str, model: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    """Clients sending requests back to back for `seconds`: throughput and latency percentiles."""
    import httpx

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        k = i
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await http.post(f"{url}/v1/models/{model}:predict", json=bodies[k % len(bodies)])
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
            k += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await http.get(f"{url}/healthz")
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    texts = len(bodies[0]["instances"])
    return {"requests_per_second": len(latencies) / elapsed, "texts_per_second": len(latencies) * texts / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(int(len(latencies) * 0.99), len(latencies) - 1)],
            "requests": len(latencies)}


def in_process(run_dir: Path, texts: list[str], seconds: float) -> dict:
    """The same texts scored without HTTP: `predict_texts` (what the server calls) and Keras'
    `model.predict` on the encoded batch, one text and 32 at a time."""
    from rnn_cli import loading
    from rnn_cli.export import token_ids
    from rnn_cli.predict import predict_texts

    trained = loading.Trained.load(run_dir)
    results = {}
    for size in (1, 32):
        batches = [texts[i:i + size] for i in range(0, len(texts) - size + 1, size)]
        encoded = [token_ids(trained, batch) for batch in batches]
        for name, call in (("predict_texts", lambda k: predict_texts(trained, batches[k % len(batches)])),
                           ("model.predict", lambda k: trained.model.predict(encoded[k % len(encoded)], verbose=0))):
            call(0)
            timings, deadline, k = [], time.perf_counter() + seconds, 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                call(k)
                timings.append(time.perf_counter() - started)
                k += 1
            results[f"{name}, batch {size}"] = {"texts_per_second": size * len(timings) / sum(timings),
                                                "p50_ms": 1000 * statistics.median(timings)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="A trained run folder.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="aclImdb archive or folder (test reviews).")
    parser.add_argument("--seconds", type=float, default=10.0, help="Seconds per measurement.")
    parser.add_argument("--clients", default="1,8,32", help="Concurrent clients, comma-separated.")
    parser.add_argument("--explainers", type=int, default=2, help="Clients explaining long reviews beside 8 "
                                                                       "predicting ones (0: skip that part).")
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    args = parser.parse_args()
    from rnn_cli.config import load_config

    model = load_config(args.run / "config.yaml").name
    texts = test_reviews(args.data, 2048)
    report = {"in_process": in_process(args.run, texts, args.seconds), "server": []}
    for batching in (True, False):
        process, url = start_server(args.run, batching)
        try:
            for size in (1, 32):
                bodies = [{"instances": texts[i:i + size]} for i in range(0, len(texts) - size + 1, size)]
                for clients in map(int, args.clients.split(",")):
                    figures = asyncio.run(load(url, model, bodies, clients, args.seconds))
                    row = {"batching": batching, "texts_per_request": size, "clients": clients, **figures}
                    report["server"].append(row)
                    print(json.dumps(row), flush=True)
            if batching and args.explainers:
                longest = sorted(texts, key=len)[-64:]
                singles = [{"instances": [text]} for text in texts]
                for explainers in (0, args.explainers):
                    figures = asyncio.run(load_beside_explains(url, model, singles, longest, explainers, args.seconds))
                    report["explain"] = [*report.get("explain", []), {"explainers": explainers, **figures}]
                    print(json.dumps(report["explain"][-1]), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
    for name, figures in report["in_process"].items():
        print(f"{name:<26} {figures['texts_per_second']:8.1f} texts/s  p50 {figures['p50_ms']:.2f} ms")
    print(f"\n| batching | texts/request | clients | requests/s | texts/s | p50 ms | p99 ms |\n{'| --- ' * 7}|")
    for row in report["server"]:
        print(f"| {'on' if row['batching'] else 'off'} | {row['texts_per_request']} | {row['clients']} | "
              f"{row['requests_per_second']:.1f} | {row['texts_per_second']:.1f} | {row['p50_ms']:.1f} | "
              f"{row['p99_ms']:.1f} |")
    if report.get("explain"):
        print("\n| explaining clients | predict p50 ms | predict p99 ms | predictions/s | explains/s | explains refused |")
        print("| --- " * 6 + "|")
        for row in report["explain"]:
            print(f"| {row['explainers']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['requests_per_second']:.1f} | "
                  f"{row.get('explains_per_second', 0):.1f} | {row.get('explains_refused', 0)} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
