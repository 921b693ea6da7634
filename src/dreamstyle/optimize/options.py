"""The optimizer's choices (torch-free, for the settings)."""

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("palette", "content", "noise", "style")  # the starting image; any other value names an image file
