"""slmbench: on-device benchmarking of small language models served by llama.cpp."""

__version__ = "0.1.0"
