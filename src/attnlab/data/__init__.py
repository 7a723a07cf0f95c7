"""Tokenizers, readers for the real corpora available offline, batching."""
