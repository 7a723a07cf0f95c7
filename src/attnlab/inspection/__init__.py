"""Looking inside models: the real pretrained default model and attention read-outs."""
