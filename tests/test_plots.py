"""rnn_cli.plots: figure sizes, no temporary file left, `rnn plot`."""

import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from rnn_cli.plots import DPI, FIGSIZE, plot_curves
from tests.conftest import invoke


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def history(accuracies):
    return [{"epoch": e, "loss": 1 - a, "accuracy": a + 0.05, "val_loss": 1.1 - a, "val_accuracy": a}
            for e, a in enumerate(accuracies, start=1)]


def drawn_whole(path, size=None):
    """The PNG read back: about `size` (inches at DPI, give or take what the crop to its content changes),
    and a border of background all round, so no text or line runs off its edge."""
    import matplotlib.image

    width, height = png_size(path)
    if size is not None:
        assert 0.8 * size[0] * DPI <= width <= 1.3 * size[0] * DPI and 0.8 * size[1] * DPI <= height <= 1.6 * size[1] * DPI
    pixels = matplotlib.image.imread(path)[..., :3]
    border = np.concatenate([pixels[:3].reshape(-1, 3), pixels[-3:].reshape(-1, 3),
                             pixels[:, :3].reshape(-1, 3), pixels[:, -3:].reshape(-1, 3)])
    assert border.min() > 0.98, f"{path.name}: something is drawn at the edge of the canvas"
    return width, height


@pytest.mark.parametrize("count", [1, 3])
def test_curves_png_has_the_figure_size(tmp_path, count):
    curves = [(f"a long config name-20261203-120000-{i}", history([0.6, 0.8 - i / 100, 0.7])) for i in range(count)]
    out = plot_curves(curves, tmp_path / "sub" / "curves.png", title="t")
    assert out == tmp_path / "sub" / "curves.png"
    drawn_whole(out, FIGSIZE)
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary file left


def test_the_check_sees_a_label_cut_at_the_edge(tmp_path):
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(4, 3), dpi=DPI)
    axis = figure.add_axes((0.02, 0.3, 0.9, 0.6))  # no room on the left: the label and ticks fall off the canvas
    axis.set_ylabel("actual")
    axis.set_frame_on(False)
    figure.savefig(tmp_path / "cut.png")
    plt.close(figure)
    with pytest.raises(AssertionError, match="drawn at the edge"):
        drawn_whole(tmp_path / "cut.png")


def test_the_legend_of_several_runs_names_each_once_and_covers_no_curve(tmp_path):
    import matplotlib.pyplot as plt

    shown = {}
    original = plt.close
    plt.close = lambda figure=None: shown.setdefault("figure", figure)
    try:
        plot_curves([(f"run {i}", history([0.6, 0.7, 0.8])) for i in range(3)], tmp_path / "c.png")
    finally:
        plt.close = original
    figure = shown["figure"]
    (legend,) = figure.legends  # one, for the figure, outside both plots
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["run 0: best 0.8000 (epoch 3)", "run 1: best 0.8000 (epoch 3)", "run 2: best 0.8000 (epoch 3)",
                     "training", "validation", "best validation accuracy"]
    renderer = figure.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert all(not box.overlaps(axis.get_window_extent(renderer)) for axis in figure.axes)
    assert all(axis.get_legend() is None for axis in figure.axes)
    plt.close(figure)


def test_evaluation_figures_of_two_and_four_classes_are_drawn_whole(tmp_path):
    from rnn_cli.plots import plot_evaluation

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    two = plot_evaluation(y, np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1), ("negative", "positive"),
                          tmp_path / "two", 0.5)
    y4 = rng.integers(0, 4, 400)
    p4 = rng.dirichlet(np.ones(4), 400) + np.eye(4)[y4]
    four = plot_evaluation(y4, p4 / p4.sum(axis=1, keepdims=True), ("awful", "poor", "good", "great"),
                           tmp_path / "four", 0.5)
    for path in [*two, *four]:
        drawn_whole(path)


def test_average_precision_is_the_area_under_the_precision_recall_steps():
    from rnn_cli.metrics import average_precision

    y, scores = np.array([1, 0, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.4, 0.1])
    # precision at each positive's recall step: 1/1, 2/3, 3/4 (as scikit-learn computes it)
    assert average_precision(y, scores) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert average_precision(y, y.astype(float)) == pytest.approx(1.0)


def test_plot_writes_curves_into_the_run_and_compares_runs(trained_run, tmp_path):
    (trained_run / "curves.png").unlink()  # rnn train wrote one; plot writes it again
    result = invoke("plot", "--run", trained_run)
    assert result.exit_code == 0, result.output
    assert (trained_run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "both.png"
    result = invoke("plot", "--run", trained_run, "--run", trained_run, "--out", out)
    assert result.exit_code == 0 and out.exists()


def test_plot_without_history_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("plot", "--run", tmp_path / "empty")
    assert result.exit_code == 2 and "no finished epoch to plot" in result.output


def test_sigterm_while_a_figure_is_written_leaves_no_temporary_file(trained_run, tmp_path):
    out = tmp_path / "figures" / "c.png"
    for _ in range(3):  # the figure is written in a fraction of a second: catch it there, or try again
        process = subprocess.Popen([sys.executable, "-m", "rnn_cli.cli", "plot", "--run", str(trained_run),
                                    "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while process.poll() is None and not (out.parent.exists() and any(
                p.name.startswith(".c.png.") for p in out.parent.iterdir())):
            time.sleep(0.001)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        assert [p.name for p in out.parent.iterdir() if p.name != "c.png"] == []  # no temporary file
        if code == 143:
            assert "Traceback" not in process.stderr.read()
            return
    pytest.fail("the figure was never caught while it was written")
