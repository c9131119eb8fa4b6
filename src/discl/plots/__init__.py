"""Figures: the spectrum grid, score histograms, curriculum timelines and metric curves."""
