"""Internal: see llmflow's public names in llmflow/__init__.py."""
