"""The entry point lmms-eval reads: ``[project.entry-points."lmms_eval.models"] llavidal = ...:manifest``.

lmms-eval (0.7.3) loads every entry point of the group ``lmms_eval.models`` when ``lmms_eval.models`` is
imported and calls a callable payload; the manifest names the model class by its import path, so the class
(and torch) is imported only when ``--model llavidal`` is asked for.
"""

from __future__ import annotations

from llavidal_lmms_eval import MODEL_CLASS_PATH, MODEL_NAME


def manifest():
    """lmms-eval's ``ModelManifest`` for ``--model llavidal`` (a "simple" model: it takes text contexts).

    Raises ``ImportError`` when lmms-eval is not installed (lmms-eval logs it as a failed entry point).
    """
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=MODEL_CLASS_PATH)
