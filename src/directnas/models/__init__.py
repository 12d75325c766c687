"""Models: named reference nets (registry + zoo), the ``model.pt`` file, the deployable ``Classifier``."""
