"""Calibration: the published runs, the backtest that predicts them, and the fit of the efficiency constants.

It sits beside the estimator core (DESIGN §1) and calls it; the core never imports it.

* ``runs``      the shipped runs files, one :class:`~flopcast.calibration.runs.Run` per row, source families
* ``backtest``  every run's candidate layouts stacked into one evaluate call; predictions; ``backtest()``
* ``fit``       the fit of the constants, leave-one-group-out, the stored fit document
                (``scripts/refit_efficiency.py`` runs it)
"""
