"""Learning from run records: costs, forecasts, evaluation, calibration and tuning of cascades."""
