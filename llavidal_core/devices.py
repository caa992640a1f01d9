"""Where computation runs: the one device and dtype choice used by extraction, training and inference.

torch is imported when a function runs, so light command modules can import this one.
"""

from __future__ import annotations

from llavidal_core.errors import UsageError

AUTO = "auto"


def has_cuda() -> bool:
    """Whether a CUDA GPU is usable in this process."""
    import torch

    return torch.cuda.is_available()


def choose_device(requested=None, local_rank: int = 0):
    """The ``torch.device`` to run on.

    ``requested`` None or ``"auto"``: this process's GPU when there is one (``cuda:LOCAL_RANK``, modulo the GPU
    count, as torchrun places ranks), else the CPU. ``"cuda"`` without an index gets the same GPU; any other
    name (``cpu``, ``cuda:1``, ``mps``) is taken as given. Raises `UsageError` for an unknown device name or
    CUDA asked for where there is none.
    """
    import torch

    if requested is None or str(requested) == AUTO:
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"device {requested!r} is not a torch device name (cpu, cuda, cuda:N, auto)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {requested!r}: CUDA is not available here")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return device


def default_dtype(device):
    """float32 on a CPU; bfloat16 on a GPU that supports it, else float16."""
    import torch

    if torch.device(device).type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
