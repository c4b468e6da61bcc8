"""rnn-cli: recurrent sentiment classifiers on IMDB, from a YAML config to a trained, scored model.

From Python (docs/python.md): rnn_cli.train(...), rnn_cli.resume(...), rnn_cli.load(...) -> rnn_cli.Run.
"""

__version__ = "0.1.0"
__all__ = ["Run", "load", "resume", "train"]


def __getattr__(name: str):
    """The Python API, imported on first use: `import rnn_cli` (as the `rnn` command does) stays light."""
    if name in __all__:
        from rnn_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'rnn_cli' has no attribute {name!r}")
