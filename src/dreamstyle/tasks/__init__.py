"""The tasks, one module each: stylize, dream (and its zoom), explore, sheet; over the shared parts."""
