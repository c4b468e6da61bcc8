"""rnn-cli: recurrent sentiment classifiers on IMDB, from a YAML config to a trained, scored model."""

__version__ = "0.1.0"
