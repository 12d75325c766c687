"""Training one net: the ``Trainer`` loop, the recipe (``TrainConfig``), evaluation and counting."""
