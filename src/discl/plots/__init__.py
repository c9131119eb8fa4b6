"""Figures in one paper style (``style``: sizes, fonts, colours; every figure as PDF + PNG): the spectrum grid,
CLIPScore distributions, curriculum timelines with adaptive scores, metric curves with bands over seeds."""
