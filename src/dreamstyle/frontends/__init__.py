"""Front ends over the tasks: the command line (``cli``); next, the local web page."""
