"""Worker of ``test_distributed.py``, launched by torchrun: a Trainer makes data-parallel updates on
fixed batches (rank ``r`` gets ``batches[i][r]``) and saves its loss state.

    torchrun --nproc_per_node 2 tests/train/ddp_worker.py <spec.pt>

``spec.pt`` holds ``overrides`` (config), ``run_dir``, ``out_dir`` and ``batches``. After the
updates every rank saves (rank 0 the checkpoint) and builds a resumed Trainer. Writes
``out_dir/rank{r}.pt``: the loss state before and after the updates, the learn statistics, and the
RNG states and loss state saved and resumed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from amago_rl import distributed
from amago_rl.cli import load_config
from amago_rl.trainer import Trainer


def main(spec_path: str) -> None:
    spec = torch.load(spec_path, weights_only=False)
    trainer = Trainer(load_config(spec["overrides"]), spec["run_dir"])
    r = distributed.rank()
    initial = {k: v.clone() for k, v in trainer.agent.loss.state_dict().items()}
    mine = iter(pair[r] for pair in spec["batches"])
    trainer.replay.sample = lambda: next(mine)  # type: ignore[method-assign]
    stats = trainer._learn(len(spec["batches"]))
    trainer.save()
    saved_rng = torch.get_rng_state(), trainer.replay.generator.get_state()
    trainer.close()
    resumed = Trainer(load_config([*spec["overrides"], "resume=true"]), spec["run_dir"])
    torch.save(
        {
            "world_size": distributed.world_size(),
            "initial": initial,
            "final": trainer.agent.loss.state_dict(),
            "stats": stats,
            "saved_rng": saved_rng,
            "resumed_rng": (torch.get_rng_state(), resumed.replay.generator.get_state()),
            "resumed": resumed.agent.loss.state_dict(),
            "resumed_updates": resumed.updates,
        },
        Path(spec["out_dir"]) / f"rank{r}.pt",
    )
    resumed.close()
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
