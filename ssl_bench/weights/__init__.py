"""Weights in and out: published checkpoint key layouts, loading an encoder from them, exporting a run's encoder."""
