"""The workflows, one module each, over the shared parts below them.

* ``session``: what every network-running workflow opens once (device, precision, network, thread governor),
  and what an interrupted run keeps;
* ``precheck``: what a run checks before any slow work, without its images (the studio, at submission);
* ``stylize``: style transfer by optimization, coarse to fine (``prepare`` once, ``run`` on one or more photos);
* ``dream``: Deep Dream by octaves, and its zoom;
* ``explore``: what a tap's channels respond to;
* ``sheet``: a contact sheet of stylize settings;
* ``train``, ``apply``, ``export``: feed-forward style networks;
* ``faststyle``: any painting as a feed-forward style (``apply --style``), fine-tuned once and cached;
* ``video``: any of these on a video's frames, with temporal consistency;
* ``video_chunks``: a video across workers, in chunks with warm-up frames;
* ``batch``: many photos through stylize, apply or dream, resumable;
* ``scale``: where batch jobs and video chunks run: a local process pool, or Ray tasks.
"""
