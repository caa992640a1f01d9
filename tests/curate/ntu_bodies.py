"""Hand-made NTU skeleton bodies for the curation tests (a module of its own: test folders share the name
``conftest``)."""

import numpy as np


def make_body(body_id, frames, colour):
    """A body over ``frames`` whose joints' colour pixels are ``colour`` ``(n, 25, 2)``."""
    from llavidal_pose.skeleton import Body

    frames = np.asarray(frames, dtype=np.int64)
    extra = np.zeros((len(frames), 25, 8), dtype=np.float32)
    extra[:, :, 2:4] = colour
    extra[:, :, 4] = 1.0
    joints = np.full((len(frames), 25, 3), 0.5, dtype=np.float32)
    return Body(body_id, frames, joints, np.full((len(frames), 25), 2, np.int8), None, extra)
