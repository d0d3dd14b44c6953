"""Layers that stand in for standard ones: parameter-free spatial blocks, random-feature kernel layers, shared parameter banks."""
