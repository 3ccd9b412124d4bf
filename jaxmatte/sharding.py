"""One mesh over every device of every process; batch sharded on ``data``, params replicated."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxmatte.conventions import DATA_AXIS


def maybe_initialize_distributed(
    coordinator: str = "", num_processes: int = 0, process_id: int = -1
) -> None:
    """Starts multi-process JAX when a coordinator is given by flags or environment.

    Flags win over ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``.
    With neither, this is a single-process run and nothing happens.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    if not coordinator:
        return
    num_processes = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0"))
    if process_id < 0:
        process_id = int(os.environ.get("JAX_PROCESS_ID", "-1"))
    if num_processes <= 0 or process_id < 0:
        raise ValueError(f"coordinator {coordinator!r} given without num_processes/process_id")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D ``data`` mesh over all global devices."""
    return jax.make_mesh(
        (jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def global_batch(mesh: jax.sharding.Mesh, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Assembles the process-local batches of every process into global sharded arrays."""
    sh = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sh, v) for k, v in local.items()}


def to_host(tree: Any) -> Any:
    """Fetches a (replicated or fully addressable) tree to numpy on this process."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
