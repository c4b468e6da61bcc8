import struct

import pytest

from rnn_cli.plots import DPI, FIGSIZE, plot_curves


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
