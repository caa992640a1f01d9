"""Fixtures of the object cue tests: tiny random BLIP-2, OWLv2 and CLIP folders (model + processor), made once.

The BLIP-2 is rigged to answer "cup" to everything, so real generated answers reach the tag parser.
"""

import pytest


@pytest.fixture(scope="session")
def tiny_blip2_dir(tmp_path_factory):
    from llavidal_object.testing import save_tiny_blip2

    return save_tiny_blip2(tmp_path_factory.mktemp("tiny-blip2"), answer_word="cup")


@pytest.fixture(scope="session")
def tiny_owlv2_dir(tmp_path_factory):
    from llavidal_object.testing import save_tiny_owlv2

    return save_tiny_owlv2(tmp_path_factory.mktemp("tiny-owlv2"))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from llavidal_object.testing import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def crop_encoder(tiny_clip_dir):
    from llavidal_object.crop_encoder import ClipCropEncoder
    from llavidal_object.models import load_crop_encoder

    model, image_processor = load_crop_encoder(str(tiny_clip_dir))
    return ClipCropEncoder(model, image_processor)


@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """Every object test runs with one torch thread (see the ``one_torch_thread`` fixture)."""


@pytest.fixture
def object_plugin(llavidal_plugins):
    import llavidal_object.plugin

    llavidal_plugins.register(llavidal_object.plugin, name="object", distribution="llavidal-object", version="0.1.0")
    return llavidal_plugins
