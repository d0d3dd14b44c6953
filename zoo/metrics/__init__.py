"""Evaluation metrics shared by the families (library layer: imports torch, never the registry)."""
