"""rnn serve as a real process on a loopback port: TensorFlow Serving's predict API, explain, limits
and errors, concurrent clients, shutdown by signal, and the web page in a real headless browser."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from rnn_cli import files, loading, runs
from rnn_cli.explain import explain_review
from rnn_cli.predict import predict_texts
from rnn_cli.serve import MAX_BODY, MAX_INSTANCES, warm_up
from tests.conftest import cli_train, topic_rows, write_table
from tests.test_export import TEXTS

# A system Chromium (make test installs Debian's, tests/provision.sh), or the one $RNN_CLI_CHROMIUM names.
CHROMIUM = os.environ.get("RNN_CLI_CHROMIUM") or shutil.which("chromium")
# Flags for a headless Chromium on a machine with no network and no sandbox for root.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Server:
    """`rnn serve` in a process of its own, on a free port."""

    def __init__(self, run_dir: Path, *options):
        self.process = subprocess.Popen([sys.executable, "-m", "rnn_cli.cli", "serve", "--run", str(run_dir),
                                         "--port", "0", *options],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"at (http://\S+)/ ", line)
        assert match, line + self.process.stderr.read()
        self.url = match[1]
        self.process.stdout.readline()  # the routes
        self.curl = self.process.stdout.readline().strip()  # "try: curl ..."

    def stop(self, signum=signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


@pytest.fixture(scope="module")
def server(trained_run):
    running = Server(trained_run)
    yield running
    if running.process.poll() is None:
        running.stop()


JSON = {"Content-Type": "application/json"}


def predict(server, body, **options):
    return httpx.post(f"{server.url}/v1/models/tiny:predict", timeout=30,
                      **({"json": body} | ({"headers": JSON} if "content" in options else {}) | options))


def test_predictions_are_rnn_predicts_in_tensorflow_servings_shape(server, trained_run):
    response = predict(server, {"instances": TEXTS})
    assert response.status_code == 200
    answers = response.json()["predictions"]
    for got, want in zip(answers, predict_texts(trained_run, TEXTS), strict=True):
        assert {key: got[key] for key in ("label", "words", "known_words", "truncated", "note")} == {
            key: want[key] for key in ("label", "words", "known_words", "truncated", "note")}
        if want["probability"] is None:
            assert got["probability"] is None and got["probabilities"] is None
        else:
            assert abs(got["probability"] - want["probability"]) < 1e-5
            assert got["probabilities"] == pytest.approx([1 - want["probability"], want["probability"]], abs=1e-5)
    long = answers[-1]
    assert long["truncated"] and "only its last 40 words were read" in long["note"]


def test_a_seed_group_serves_the_mean_of_its_runs(tiny_group):
    running = Server(tiny_group)
    try:
        answers = predict(running, {"instances": TEXTS}).json()["predictions"]
        seeds = [predict_texts(run, TEXTS) for run in sorted(tiny_group.glob("seed-*"))]
        for i, got in enumerate(answers):
            if got["probability"] is not None:
                assert got["probability"] == pytest.approx(np.mean([rows[i]["probability"] for rows in seeds]), abs=1e-5)
        facts = httpx.get(f"{running.url}/v1/models/tiny/metadata", timeout=30).json()["metadata"]["model"]
        assert facts["architecture"].startswith("the mean of 2 seeds' Embedding(")
    finally:
        running.stop()


def test_explain_is_rnn_explains_trace(server, trained_run):
    text = "The movie was great and the actors wonderful"
    response = httpx.post(f"{server.url}/v1/explain", json={"text": text}, timeout=30)
    assert response.status_code == 200
    got, want = response.json(), explain_review(trained_run, text).as_dict(5)
    assert [t["word"] for t in got["tokens"]] == [t["word"] for t in want["tokens"]]
    assert [t["change"] for t in got["tokens"]] == pytest.approx([t["change"] for t in want["tokens"]], abs=1e-9)
    assert got["probability"] == pytest.approx(want["probability"], abs=1e-9) and got["movers"] == want["movers"]
    negative = httpx.post(f"{server.url}/v1/explain", json={"text": text, "class": "negative"}, timeout=30).json()
    assert negative["class"] == "negative" and negative["probability"] == pytest.approx(1 - got["probability"])


@pytest.mark.parametrize("body, status, says", [
    (b"{not json", 400, "not JSON"),
    (b'{"inputs": ["a"]}', 400, '{"instances"'),
    (b'{"instances": []}', 400, "one or more"),
    (b'{"instances": ["fine", 3]}', 400, "instances[1]: expected a string, got a number"),
    (b'{"instances": "a text"}', 400, "a list"),
    (json.dumps({"instances": ["a"] * (MAX_INSTANCES + 1)}).encode(), 422, f"at most {MAX_INSTANCES}"),
    (json.dumps({"instances": ["word " * (MAX_BODY // 5)]}).encode(), 413, "at most 1,048,576"),
    (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested deeper than 64 levels"),
    (b'{"instances": [' + b"[" * 500 + b"]" * 500 + b"]}", 400, "nested deeper than 64 levels"),
])
def test_bad_requests_get_a_status_and_a_json_message(server, body, status, says):
    response = predict(server, None, content=body)
    assert response.status_code == status
    assert says in response.json()["error"]


def test_a_body_over_the_limit_without_a_length_is_refused_too(server):
    chunks = (b"x" * 65536 for _ in range(MAX_BODY // 65536 + 2))  # chunked: no Content-Length
    response = predict(server, None, content=chunks)
    assert response.status_code == 413 and "bytes" in response.json()["error"]


def test_routes_and_errors(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "model": "tiny",
                                                         "classes": ["negative", "positive"]}
    assert httpx.get(f"{server.url}/v1/models/tiny").json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert httpx.get(f"{server.url}/v1/models/tiny/metadata").json()["metadata"]["maxlen"] == 40
    other = httpx.post(f"{server.url}/v1/models/other:predict", json={"instances": ["a"]})
    assert other.status_code == 404 and "serves 'tiny'" in other.json()["error"]
    versioned = httpx.post(f"{server.url}/v1/models/tiny/versions/1:predict", json={"instances": ["great"]})
    assert versioned.status_code == 200
    assert httpx.get(f"{server.url}/v1/models/tiny:predict").status_code == 405
    assert httpx.get(f"{server.url}/nowhere").json() == {"error": "Not Found"}
    empty = httpx.post(f"{server.url}/v1/explain", json={"text": ""})
    assert empty.status_code == 400 and "nothing to explain" in empty.json()["error"]
    assert httpx.post(f"{server.url}/v1/explain", json={"text": "a", "class": "x"}).status_code == 400


def test_concurrent_requests_each_get_their_own_answers(server, trained_run):
    texts = [f"the movie was {word} and {other}" for word in ("great", "dull", "superb", "awful")
             for other in ("boring", "moving", "wonderful", "a waste")]
    want = {t: r["probability"] for t, r in zip(texts, predict_texts(trained_run, texts))}
    got, errors = {}, []

    def client(chunk):
        try:
            for text in chunk:
                got[text] = predict(server, {"instances": [text]}).json()["predictions"][0]["probability"]
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=client, args=(texts[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert got == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_server_cleanly(trained_run, signum, code):
    running = Server(trained_run, "--no-batching")
    assert predict(running, {"instances": ["great"]}).status_code == 200
    returncode, err = running.stop(signum)
    assert returncode == code and err.strip().splitlines()[-1] == "stopped", err


def test_a_port_in_use_is_one_line(server, trained_run):
    port = server.url.rsplit(":", 1)[1]
    done = subprocess.run([sys.executable, "-m", "rnn_cli.cli", "serve", "--run", str(trained_run), "--port", port],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert re.fullmatch(rf"Error: --host 127.0.0.1 --port {port}: cannot listen there \(.+\); .+\n", done.stderr)


def test_when_ready_it_prints_the_curl_line_for_the_model_it_serves(server, trained_run):
    import shlex

    words = shlex.split(server.curl.removeprefix("try: "))
    assert words[:4] == ["curl", "-H", "Content-Type: application/json", "-d"]
    assert words[5] == f"{server.url}/v1/models/tiny:predict"
    answer = httpx.post(words[5], content=words[4], headers=JSON, timeout=30)  # what that curl sends
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["probability"] == pytest.approx(
        predict_texts(trained_run, ["A moving, beautifully acted film."])[0]["probability"], abs=1e-6)


def test_serve_name_sets_the_model_name_in_the_urls(trained_run):
    named = Server(trained_run, "--name", "imdb")
    try:
        assert named.curl.endswith("/v1/models/imdb:predict")
        assert httpx.post(f"{named.url}/v1/models/imdb:predict", json={"instances": ["good"]}, timeout=30).status_code == 200
        assert httpx.post(f"{named.url}/v1/models/tiny:predict", json={"instances": ["good"]}, timeout=30).status_code == 404
    finally:
        named.stop()
    bad = subprocess.run([sys.executable, "-m", "rnn_cli.cli", "serve", "--run", str(trained_run), "--name", "a/b"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--name" in bad.stderr and "letters, digits" in bad.stderr


@pytest.fixture(scope="module")
def four_class_run(tmp_path_factory, tiny_config):
    """A tiny run of four classes in a fixed, unsorted order (data.classes)."""
    folder = tmp_path_factory.mktemp("four")
    data = write_table(folder / "four.csv", topic_rows(["sport", "music", "food", "pos"], 40))
    result = cli_train(folder / "run", tiny_config, data, "--set", "data.classes=[music, sport, food, pos]",
                       "--epochs", "3")
    assert result.exit_code == 0, result.output
    return folder / "run"


def page_of(playwright, url):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/")
    page.wait_for_selector("#examples button")
    return browser, page


@pytest.mark.parametrize("which", ["two classes", "four classes"])
def test_the_page_shows_what_rnn_predict_says(request, which, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "the page test needs Chromium: make test installs it (tests/provision.sh)"
    run_dir = request.getfixturevalue("trained_run" if which == "two classes" else "four_class_run")
    shown = server_of(request, run_dir)
    text = "The movie was great, the actors wonderful.<br />Loved it" if which == "two classes" else \
        "the goal and the team, then a song on the guitar"
    want = predict_texts(run_dir, [text])[0]
    trace = explain_review(run_dir, text)
    classes = runs.read_classes(run_dir)
    with sync_playwright() as playwright:
        browser, page = page_of(playwright, shown.url)
        try:
            facts = dict(zip(page.eval_on_selector_all("#facts dt", "n => n.map(x => x.textContent)"),
                             page.eval_on_selector_all("#facts dd", "n => n.map(x => x.textContent)")))
            served = httpx.get(f"{shown.url}/v1/models/{runs.config_name(run_dir)}/metadata", timeout=30).json()
            accuracy = served["metadata"]["model"]["test_accuracy"]  # training's, or rnn eval's when newer
            assert accuracy in [files.read_json(run_dir / name)["accuracy"] for name in (runs.METRICS, runs.EVAL)
                                if (run_dir / name).exists()]
            assert facts["test accuracy"] == f"{accuracy:.4f}" and facts["classes"] == ", ".join(classes)
            assert facts["layers"].startswith("Embedding(40, 8) -> SimpleRNN(8) -> Dense(")
            assert facts["parameters"] == f"{files.read_json(run_dir / runs.RUN_RECORD)['parameters']:,}"
            page.fill("#review", text)
            page.click("#score")
            page.wait_for_selector("#strip .word")
            assert page.text_content("#label") == want["label"]
            bars = page.eval_on_selector_all("#bars .share", "n => n.map(x => [x.dataset.class, x.textContent])")
            expected = ([1 - want["probability"], want["probability"]] if len(classes) == 2
                        else [want["probabilities"][name] for name in classes])
            assert bars == [[name, f"{p:.4f}"] for name, p in zip(classes, expected)]
            words = page.eval_on_selector_all("#strip .word .text", "n => n.map(x => x.textContent)")
            assert words == trace.words
            assert not page.is_visible("#strip .change")  # numbers only when asked
            page.check("#numbers")
            numbers = page.eval_on_selector_all("#strip .change", "n => n.map(x => x.textContent)")
            assert page.is_visible("#strip .change")
            assert numbers == [f"{c:+.3f}" for c in trace.changes]
            assert page.eval_on_selector_all("#line circle", "n => n.length") == len(trace.words)
            # $RNN_CLI_SCREENSHOTS keeps the screenshots for a person to look at
            picture = Path(os.environ.get("RNN_CLI_SCREENSHOTS") or tmp_path) / f"page-{len(classes)}-classes.png"
            page.screenshot(path=str(picture), full_page=True)
            assert picture.stat().st_size > 20_000  # the page drawn, not a blank one

            page.click("#examples button >> nth=0")  # an example fills the box and scores it
            page.wait_for_function("document.getElementById('review').value.startsWith('A moving')")
            page.wait_for_selector("#strip .word")

            attack = f'<img src=x onerror="document.title=1"> {text}'  # what a user types is text, never HTML
            page.fill("#review", attack)
            page.click("#score")
            read = explain_review(run_dir, attack).words
            page.wait_for_function(f"document.querySelectorAll('#strip .word').length === {len(read)}")
            assert page.eval_on_selector_all("#strip .word .text", "n => n.map(x => x.textContent)") == read
            assert page.eval_on_selector_all("#result img, #facts img", "n => n.length") == 0
            assert page.title() == "rnn serve"

            page.fill("#review", "")
            page.click("#score")
            page.wait_for_function("document.getElementById('label').textContent === 'no score'")
            assert "empty review" in page.text_content("#note")
        finally:
            browser.close()


def server_of(request, run_dir):
    """The module's server for the shared tiny run, or one of its own for another run."""
    if run_dir == request.getfixturevalue("trained_run"):
        return request.getfixturevalue("server")
    running = Server(run_dir)
    request.addfinalizer(running.stop)
    return running


def test_the_page_and_explain_png_colour_words_alike():
    from rnn_cli import plots

    page = (Path(plots.__file__).parent / "page.html").read_text(encoding="utf-8")
    scale, away, towards = re.search(r"const SCALE = ([\d.]+), AWAY = \[(.+?)\], TOWARDS = \[(.+?)\];", page).groups()
    as_hex = lambda text: "#" + "".join(f"{int(c, 16):02x}" for c in text.replace("0x", "").split(", "))
    assert float(scale) == plots.CHANGE_SCALE
    assert (as_hex(away), as_hex(towards)) == (plots.AWAY_COLOR, plots.TOWARDS_COLOR)
    assert f"--towards: {plots.TOWARDS_COLOR}; --away: {plots.AWAY_COLOR};" in page


def test_connections_send_without_waiting_for_acks():
    # Nagle's algorithm on a server socket held each response's body for the client's delayed ACK
    # (docs/performance.md); asyncio turns it off only for sockets that name their protocol.
    import asyncio

    from rnn_cli.serve import listen

    async def accepted_nodelay():
        found = asyncio.get_running_loop().create_future()

        def connected(reader, writer):
            found.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=listen("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(found, 10)
        writer.close()
        server.close()
        return value

    assert asyncio.run(accepted_nodelay()) == 1


def test_only_json_from_this_machine_reaches_the_model(server):
    port = server.url.rsplit(":", 1)[1]
    body = json.dumps({"instances": ["great"]})
    for path in ("/v1/models/tiny:predict", "/v1/explain"):
        # What a page of another site can send without asking first: a form, plain text, no type at all
        for kind in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", None):
            headers = {"Content-Type": kind} if kind else {}
            refused = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
            assert refused.status_code == 415 and "Content-Type: application/json" in refused.json()["error"]
        # A page whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name as the Host
        for host in (f"evil.example:{port}", "attacker.test", f"127.0.0.1.evil.example:{port}", f"[::2]:{port}"):
            refused = httpx.post(server.url + path, content=body, headers={**JSON, "Host": host}, timeout=30)
            assert refused.status_code == 403 and "localhost only" in refused.json()["error"], host
        assert httpx.get(f"{server.url}/healthz", headers={"Host": f"evil.example:{port}"}).status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}"):
        answered = httpx.post(f"{server.url}/v1/models/tiny:predict", content=body,
                              headers={"Content-Type": "application/json; charset=utf-8", "Host": host}, timeout=30)
        assert answered.status_code == 200, (host, answered.text)


def test_shutdown_is_bounded_with_a_client_sending_slowly_and_a_client_that_leaves_mid_body(trained_run):
    from rnn_cli.serve import SHUTDOWN_GRACE

    running = Server(trained_run)
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    head = ("POST /v1/models/tiny:predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n").encode()
    leaving = socket.create_connection((host, int(port)))
    leaving.sendall(head + b'{"instances": ["gre')
    leaving.close()  # gone before its body is whole
    slow = socket.create_connection((host, int(port)))
    slow.sendall(head + b"{")  # and never more
    assert predict(running, {"instances": ["great"]}).status_code == 200  # the others are still answered
    started = time.monotonic()
    returncode, err = running.stop(signal.SIGTERM)
    slow.close()
    assert returncode == 143 and time.monotonic() - started < SHUTDOWN_GRACE + 5, err
    assert "Traceback" not in err and "Exception" not in err, err


def test_a_server_open_to_other_machines_says_so(trained_run):
    running = Server(trained_run, "--host", "0.0.0.0")
    try:
        answered = httpx.post(f"{running.url}/v1/models/tiny:predict", json={"instances": ["great"]},
                              headers={"Host": "my-server.example:8000"}, timeout=30)
        assert answered.status_code == 200  # its clients name it as they reach it
    finally:
        _, err = running.stop()
    assert "warning: --host 0.0.0.0 lets other machines call this server" in err


def test_after_the_warm_up_no_request_waits_for_a_trace(trained_run):
    trained = loading.Trained.load(trained_run)
    warm_up(trained)
    traced = trained.model.predict_function.experimental_get_tracing_count()
    for texts in (["a wonderful film"] * 5, ["an awful film " * 20] * 7, ["dull"], ["good " * 200, "bad"] * 3):
        predict_texts(trained, texts)
    assert trained.model.predict_function.experimental_get_tracing_count() == traced
