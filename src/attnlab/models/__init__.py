"""Models built from attnlab's own attention: Encoder (BERT-style), EncoderDecoder (the original
Transformer) and GPT (decoder-only)."""
