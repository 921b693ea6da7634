"""Colour choices and constants, torch-free: the settings read them, and so does the torch-free apply."""

PRESERVE_COLOR = ("none", "luminance", "match")  # stylize and dream: keep the photo's colours, and how
# NTSC YIQ; rows give Y, I, Q from RGB (luminance-only transfer keeps Y from the result, I and Q from the photo).
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))
