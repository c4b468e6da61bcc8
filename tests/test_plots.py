"""rnn_cli.plots: figure sizes, no temporary file left, `rnn plot`."""

import struct

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


@pytest.mark.parametrize("count", [1, 3])
def test_curves_png_has_the_figure_size(tmp_path, count):
    curves = [(f"run {i}", history([0.6, 0.8 - i / 100, 0.7])) for i in range(count)]
    out = plot_curves(curves, tmp_path / "sub" / "curves.png", title="t")
    assert out == tmp_path / "sub" / "curves.png"
    assert png_size(out) == (FIGSIZE[0] * DPI, int(FIGSIZE[1] * DPI))
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary file left


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
