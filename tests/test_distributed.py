"""Training under torchrun: two gloo processes train with DistributedDataParallel, rank 0 writes the checkpoint,
and a single process resumes it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image
from skimage import data

import dreamstyle

SCRIPT = textwrap.dedent("""
    import sys
    from dreamstyle.events import Run
    from dreamstyle.frontends.cli import main

    real = Run.step

    def step(self, *args, **kwargs):  # Ctrl-C on every rank after step 2, as torchrun passes a user's on
        real(self, *args, **kwargs)
        if self.done == 2:
            raise KeyboardInterrupt

    Run.step = step
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture
def training(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((96, 72)).save(photos / f"{name}.jpg")
    painting = tmp_path / "painting.png"
    Image.fromarray(data.rocket()).resize((96, 64)).save(painting)
    return photos, painting


def test_two_gloo_processes_checkpoint_and_one_process_resumes(training, tmp_path):
    photos, painting = training
    out = tmp_path / "style.pt"
    script = tmp_path / "train_then_stop.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), "train", str(painting), "-o", str(out), "--data", str(photos),
                           "--max-steps", "4", "--size", "64", "--batch-size", "1", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert "interrupted at step 2 of 4" in proc.stderr, proc.stderr[-3000:]
    state = torch.load(out, weights_only=True)["train"]
    assert (state["step"], state["world"], state["max_steps"]) == (2, 2, 4)
    model = dreamstyle.train(painting, out, data=str(photos), resume=True, size=64, batch_size=1, progress=False)
    assert model.meta["steps"] == 4
    assert "train" not in torch.load(out, weights_only=True)  # finished
