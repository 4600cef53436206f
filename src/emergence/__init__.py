"""Emergence Lab: train language-model families, evaluate them, quantify and explain emergent abilities."""

__version__ = "0.1.0"
