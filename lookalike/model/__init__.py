"""Embedding models: a registry of versioned models, each owning its preprocessing."""

from lookalike.model.registry import DEFAULT_MODEL, MODELS, load_model, model_id

__all__ = ["DEFAULT_MODEL", "MODELS", "load_model", "model_id"]
