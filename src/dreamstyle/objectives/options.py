"""The objectives' choices (torch-free, for the settings)."""

STYLE_LOSSES = ("gram", "meancov", "meanstd")
SMOOTHING = ("none", "softmax", "scale")
DREAM_OBJECTIVES = ("l2", "mean")
