"""Reports: markdown + JSON over run folders, plots, TensorBoard curves, re-measuring runs side by side."""
