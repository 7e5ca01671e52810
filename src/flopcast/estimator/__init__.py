"""The estimator core: pure functions over numpy arrays that broadcast (DESIGN §4).

A single estimate is an array of length 1; a planner sweep is an array of length 10^6. No module here
imports typer or rich, and none keeps a scalar copy of a formula.
"""
