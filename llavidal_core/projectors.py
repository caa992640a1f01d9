"""The built-in projectors, registered through the same hook as any plugin's.

A projector maps a cue's feature rows ``(..., feature_dim)`` into the LLM's embedding space
``(..., llm_hidden_size)``. ``linear`` is LLAVIDAL's (one ``nn.Linear`` with bias, state-dict keys
``weight``/``bias``); ``mlp2x_gelu`` is LLaVA-1.5's (Linear, GELU, Linear: keys ``0.*`` and ``2.*``).
torch is imported inside the builders, so registering them costs nothing.
"""

from llavidal_core.hookspecs import hookimpl


def build_linear_projector(feature_dim: int, llm_hidden_size: int):
    from torch import nn

    return nn.Linear(feature_dim, llm_hidden_size)


def build_mlp2x_gelu_projector(feature_dim: int, llm_hidden_size: int):
    from torch import nn

    return nn.Sequential(
        nn.Linear(feature_dim, llm_hidden_size),
        nn.GELU(),
        nn.Linear(llm_hidden_size, llm_hidden_size),
    )


@hookimpl
def llavidal_register_projectors(register):
    register("linear", build_linear_projector)
    register("mlp2x_gelu", build_mlp2x_gelu_projector)
