"""privft: what each way of fine-tuning a causal LM costs in privacy, utility and compute."""

__version__ = "0.1.0"
