"""llavidal models as an lmms-eval model: ``lmms-eval --model llavidal --model_args pretrained=MODEL``.

The distribution registers `registration.manifest` in lmms-eval's ``lmms_eval.models`` entry-point group;
lmms-eval then imports `llavidal_lmms_eval.model.Llavidal`, which answers its requests with
`llavidal_core.inference.LlavidalPipeline`. `requests` turns a request into the pipeline's inputs and
generation settings and `scoring` scores continuations; neither imports lmms-eval.
"""

MODEL_NAME = "llavidal"
MODEL_CLASS_PATH = "llavidal_lmms_eval.model.Llavidal"
