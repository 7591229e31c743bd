"""What the user writes: patterns, verbalizers, their YAML files, PVPs and the estimator's
settings. Pure Python (no torch, transformers or scikit-learn), so reading and checking
a configuration is fast."""
