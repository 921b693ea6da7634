"""Front ends over the API: the command line (``cli``) and the local web studio (``serve``, ``studio``, ``guard``)."""
