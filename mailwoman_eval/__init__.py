"""mweval — evaluate and diagnose Mailwoman neural address-parser checkpoints."""

__version__ = "0.1.0"
