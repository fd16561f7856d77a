"""verl platform ``cpu``: torch on the CPU with gloo collectives.

verl 0.9.1 resolves its device through ``verl.plugin.platform.get_platform()``; without a GPU it falls
back to ``nvidia`` and rewrites ``trainer.device=cpu`` to ``cuda``. This module registers a ``cpu``
platform with verl's own ``PlatformRegistry``; ``VERL_PLATFORM=cpu`` selects it in every process (the
driver, the TaskRunner and every Ray worker inherit the variable).

``device_module`` is :data:`CPU_DEVICE_MODULE`, a stand-in for ``torch.cuda`` whose memory, stream and
RNG calls are the CPU's equivalents (memory figures are 0: there is no device memory to report).
``current_device()`` returns the string ``"cpu"``, because verl passes it straight to ``tensor.to(...)``
and ``torch.device(...)``, where an integer would mean ``cuda:<n>``.

Ray schedules verl's workers on accelerator slots (resource ``GPU``); on a CPU machine start Ray with
fake slots (``+ray_kwargs.ray_init.num_gpus=<workers>``): nothing uses them but the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import types
from typing import Any, Optional

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

from recipe.cpu_backend import PLATFORM_NAME  # noqa: E402  the platform's name in verl's registry

#: torch's device type and the collective backend that runs on it.
DEVICE_NAME = "cpu"
COMMUNICATION_BACKEND = "gloo"
#: Ray resource verl asks for per worker; faked on CPU machines with ``ray_init.num_gpus``.
RAY_RESOURCE = "GPU"
#: Environment variable with the number of torch threads of the trainer and rollout processes
#: (default: all cores; they take turns in verl's sync trainer, so they do not compete).
THREADS_ENV = "SGPO_CPU_THREADS"


def use_all_cores() -> int:
    """Give torch all cores (or ``$SGPO_CPU_THREADS``): Ray sets ``OMP_NUM_THREADS=1`` in its workers."""
    threads = int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return threads


def _no_op(*args: Any, **kwargs: Any) -> None:
    return None


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


class _CPUStream:
    """Stands in for a device stream: CPU work is synchronous, so waiting and syncing do nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait_stream(self, other: Any) -> None:
        pass

    def wait_event(self, event: Any) -> None:
        pass

    def record_event(self, event: Any = None) -> "_CPUEvent":
        return event or _CPUEvent()


class _CPUEvent:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, stream: Any = None) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait(self, stream: Any = None) -> None:
        pass

    def query(self) -> bool:
        return True


def _mem_get_info(device: Any = None) -> tuple[int, int]:
    """(free, total) bytes of host memory, the CPU's analogue of device memory."""
    import psutil

    memory = psutil.virtual_memory()
    return int(memory.available), int(memory.total)


def _build_device_module() -> types.ModuleType:
    """A ``torch.cuda``-shaped namespace for the CPU (every call verl 0.9.1 makes through ``get_torch_device()``)."""
    module = types.ModuleType("sgpo_cpu_device")
    module.__doc__ = "torch.cuda-shaped calls for the CPU, used by verl through get_torch_device()."
    module.is_available = lambda: True
    module.device_count = lambda: 1
    module.current_device = lambda: DEVICE_NAME
    module.set_device = _no_op
    module.synchronize = _no_op
    module.empty_cache = _no_op
    module.ipc_collect = _no_op
    module.set_per_process_memory_fraction = _no_op
    module.memory_allocated = _zero
    module.memory_reserved = _zero
    module.max_memory_allocated = _zero
    module.max_memory_reserved = _zero
    module.reset_peak_memory_stats = _no_op
    module.mem_get_info = _mem_get_info
    module.get_device_name = lambda device=None: "cpu"
    module.get_rng_state = lambda device=None: torch.get_rng_state()
    module.set_rng_state = lambda state, device=None: torch.set_rng_state(state)
    module.manual_seed = torch.manual_seed
    module.manual_seed_all = torch.manual_seed
    module.Stream = _CPUStream
    module.Event = _CPUEvent
    module.current_stream = lambda device=None: _CPUStream()
    module.stream = lambda stream=None: contextlib.nullcontext()
    return module


#: The ``device_module`` of the cpu platform.
CPU_DEVICE_MODULE = _build_device_module()


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl platform for training and generating on the CPU (gloo collectives, no device memory)."""

    @property
    def device_name(self) -> str:
        return DEVICE_NAME

    @property
    def vendor_name(self) -> str:
        return PLATFORM_NAME

    @property
    def device_module(self) -> types.ModuleType:
        return CPU_DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: a GPU run must not land here by accident. Selected by VERL_PLATFORM=cpu only.
        return False

    def current_device(self) -> str:  # verl's type hint says int; "cpu" is what tensor.to()/torch.device() need
        return DEVICE_NAME

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: Optional[int] = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return COMMUNICATION_BACKEND

    def visible_devices_envvar(self) -> str:
        # Ray sets this for GPU-slot actors; on the CPU it selects nothing.
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        return RAY_RESOURCE

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
