"""dreamstyle's own graph tracing names and cuts the networks exactly as torchvision's feature extraction does
(so every tap keeps its name), and the default network runs without importing torchvision."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from dreamstyle.backbones import SPECS, get_spec, list_taps
from dreamstyle.backbones.discover import prepare
from dreamstyle.backbones.tracing import extract, leaf_types, node_names


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return prepare(get_spec(name).build())


@pytest.mark.parametrize("name", list(SPECS))
def test_node_names_are_torchvisions(name):
    model = _meta(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = get_graph_node_names(model, tracer_kwargs={"leaf_modules": list(leaf_types())})[1]
    assert ["x", *node_names(model)] == theirs


@pytest.mark.parametrize("name", ["efficientnet_lite0", "squeezenet1_1", "resnet50", "mobilenet_v3_large"])
def test_the_cut_graph_computes_what_torchvisions_does(name):
    torch.manual_seed(0)
    model = prepare(get_spec(name).build())
    taps = [t.node for t in list_taps(get_spec(name))][::9][:6]
    x = torch.rand(1, 3, 96, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = create_feature_extractor(model, {n: n for n in taps})(x)
    ours = extract(model, taps)(x)
    assert list(ours) == list(dict.fromkeys(taps))
    for node in ours:
        assert torch.equal(ours[node], theirs[node]), node


def test_the_cut_graph_ends_at_the_deepest_tap():
    model = prepare(get_spec("efficientnet_lite0").build())
    node = next(t.node for t in list_taps(get_spec("efficientnet_lite0")) if t.name == "blocks.1")
    shallow = extract(model, [node])
    assert not any(name.startswith(("blocks.5", "head", "fc")) for name, _ in shallow.named_modules())


def test_the_default_command_imports_neither_torchvision_nor_dynamo(image_files, tmp_path):
    """Each would add about 1.5 s to every run: the default network and L-BFGS need neither."""
    code = ("import sys; from dreamstyle.frontends.cli import main; "
            "main(['stylize', sys.argv[1], sys.argv[2], '-o', sys.argv[3], '--size', '48', '--iterations', '2', "
            "'--quiet']); print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(image_files.content), str(image_files.style),
                           str(tmp_path / "o.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False False", proc.stderr
