"""The stages of a ``directnas run`` and the run folder that holds their outputs."""
