"""``d4rl:<dataset_id>`` through TorchRL's ``D4RLExperienceReplay`` -> TED transitions ``[N]``.

TorchRL 0.14.1 (``torchrl/data/datasets/d4rl.py``) with ``direct_download=True`` looks the id up
in ``D4RL_DATASETS`` (``d4rl_infos.py``: id -> URL of D4RL's hdf5 file), fetches the file with
``urllib.request.urlretrieve`` into a temporary directory (``_download_dataset_from_url``,
line 459), reads it with ``PersistentTensorDict.from_h5`` and stores the converted transitions as
a memmap in ``<root>/<dataset_id>`` (``root`` defaults to ``~/.cache/torchrl/d4rl``; once there,
nothing is downloaded again). Its conversion (``_process_data_from_env``, lines 377-445, and
line 208) differs from D4RL's arrays in three ways, handled by :func:`repair_torchrl_d4rl`:

- line 208 zeroes ``("next", "observation")`` wherever ``done = terminals | timeouts``. After a
  timeout the true next observation is needed (truncation bootstraps), so the timeout transition
  is dropped and its episode ends one step earlier, truncated, on the last real observation (what
  D4RL's own ``qlearning_dataset`` does). A terminal transition is kept (its reward and end
  matter, the value after it is never bootstrapped); its final observation becomes a copy of the
  terminal step's observation instead of zeros, which keeps observation statistics in range.
- line 424 drops the dataset's last row even when ``next_observations`` is stored, so the last
  episode loses its last transition and ends open (no end flag; it is kept, as a cut episode).
- ``truncated`` is D4RL's raw ``timeouts`` (may be set with ``terminals``) and absent for
  datasets without timeouts; here it is ``timeouts & ~terminals`` and always present.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from amago_rl import keys

_NO_DATA = (
    "Without network, pass a local D4RL-style .npz file instead (written by "
    "amago_rl.data.save_d4rl_npz, e.g. via benchmarks/learning/make_offline_dataset.py) or a "
    "'minari:<id>' dataset present in $MINARI_DATASETS_PATH."
)


def load_torchrl_d4rl(dataset_id: str, **kwargs: Any) -> TensorDict:
    """TED transitions ``[N]`` of D4RL's ``dataset_id`` read by TorchRL's loader (keyword options
    go to ``D4RLExperienceReplay``, e.g. ``root=``), repaired by :func:`repair_torchrl_d4rl`."""
    from torchrl.data.datasets.d4rl_infos import D4RL_DATASETS
    from torchrl.data.datasets.utils import _get_root_dir, load_dataset

    source = f"d4rl:{dataset_id}"
    if not kwargs.get("use_truncated_as_done", True):
        raise ValueError(
            f"Offline dataset {source!r}: use_truncated_as_done=False is not supported (timeouts "
            "end episodes here); leave it out."
        )
    if kwargs.get("split_trajs", False):
        raise ValueError(
            f"Offline dataset {source!r}: split_trajs=True is not supported (trajectories are cut "
            "from the flat transitions here); leave it out."
        )
    # d4rl's own qlearning_dataset (direct_download=False, picked when d4rl is installed) has
    # other semantics; TorchRL itself advises the direct download.
    kwargs.setdefault("direct_download", True)
    root = Path(kwargs.get("root") or _get_root_dir("d4rl"))
    if not (root / dataset_id).exists():  # TorchRL would download it
        if dataset_id not in D4RL_DATASETS:
            close = difflib.get_close_matches(dataset_id, list(D4RL_DATASETS), n=3)
            raise ValueError(
                f"Offline dataset {source!r}: not among TorchRL's D4RL datasets "
                f"(torchrl/data/datasets/d4rl_infos.py); close matches: {close or 'none'}."
            )
        if not kwargs.get("download", True):
            raise FileNotFoundError(
                f"Offline dataset {source!r}: not in {root / dataset_id} and download=False. "
                f"{_NO_DATA}"
            )
    try:
        with _restored_env_var("D4RL_DATASET_DIR"):  # TorchRL sets it to a deleted temp dir
            dataset = load_dataset(source, batch_size=1, **kwargs)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        url = D4RL_DATASETS.get(dataset_id, "its URL")
        raise FileNotFoundError(
            f"Offline dataset {source!r}: could not download {url} ({err}). {_NO_DATA}"
        ) from err
    if not len(dataset):
        raise ValueError(f"Offline dataset {source!r} holds no transitions.")
    return repair_torchrl_d4rl(dataset[:].to_tensordict())


def repair_torchrl_d4rl(td: TensorDictBase) -> TensorDict:
    """TorchRL's D4RL transitions ``[N]`` -> ours ``[N - timeouts]`` (module docstring): only
    ``observation``, ``action`` and ``next`` observation / reward / terminated / truncated / done
    are kept."""
    nxt = td.get("next")
    n = td.shape[0]
    terminated = nxt.get(keys.TERMINATED).reshape(n, 1).bool()
    truncated = nxt.get(keys.TRUNCATED, torch.zeros_like(terminated)).reshape(n, 1).bool()
    truncated = truncated & ~terminated
    obs = td.get(keys.OBSERVATION)
    next_obs = nxt.get(keys.OBSERVATION).clone()
    term_rows = terminated.reshape(-1)
    next_obs[term_rows] = obs[term_rows]
    cut = truncated.reshape(-1)
    # the row before a dropped timeout ends its episode (unless it ends one itself or is absent)
    before = torch.zeros_like(cut)
    before[:-1] = cut[1:]
    before &= ~(terminated | truncated).reshape(-1)
    truncated = truncated | before.unsqueeze(-1)
    out = TensorDict(
        {
            keys.OBSERVATION: obs,
            keys.ACTION: td.get(keys.ACTION),
            "next": {
                keys.OBSERVATION: next_obs,
                keys.REWARD: nxt.get(keys.REWARD).reshape(n, 1),
                keys.TERMINATED: terminated,
                keys.TRUNCATED: truncated,
                keys.DONE: terminated | truncated,
            },
        },
        batch_size=[n],
    )
    return out[~cut]


@contextlib.contextmanager
def _restored_env_var(name: str) -> Iterator[None]:
    old = os.environ.get(name)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
