"""The tasks, one module each: stylize, dream (and its zoom), explore, sheet; each is prepare-then-run over the shared parts."""
