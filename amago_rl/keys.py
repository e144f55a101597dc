"""The TensorDict key contract shared by envs, modules, collectors, replay and losses.

See DESIGN.md §3. Every module takes its keys as constructor arguments whose defaults are
these names, so users can remap them; nothing below is hard-coded deep inside a module.

| key | per-step shape | meaning |
|---|---|---|
| ``observation`` | obs shape | what the env shows (or the env's own, possibly nested, keys) |
| ``prev_action`` | [A] float | previous action: one-hot / [-1, 1] / {0, 1}; zeros at trial start |
| ``prev_reward`` | [1] float | reward received for the previous action; 0 at trial start |
| ``time_idx`` | [1] int64 | steps since the trial started (position of the token) |
| ``is_init`` | [1] bool | first step of a trial; resets rollout memory |
| ``mask`` | [1] bool | sampled sequences only: False on padding |
| ``nonfinite`` | [1] bool | ``env.on_nonfinite=warn`` only: this env output held NaN / inf (replaced by 0) |
| ``tstep_embedding`` | [D_tstep] | output of a timestep encoder |
| ``state_embedding`` | [D_state] | output of a trajectory encoder |
"""

from __future__ import annotations

OBSERVATION = "observation"
PREV_ACTION = "prev_action"
PREV_REWARD = "prev_reward"
TIME_IDX = "time_idx"
IS_INIT = "is_init"
MASK = "mask"
ACTION = "action"
REWARD = "reward"
DONE = "done"
TERMINATED = "terminated"
TRUNCATED = "truncated"
TSTEP_EMBEDDING = "tstep_embedding"
STATE_EMBEDDING = "state_embedding"
#: running return written by ``amago_env`` for logging; never an input of the agent
EPISODE_REWARD = "episode_reward"
#: set by ``FiniteCheck(on_nonfinite="warn")`` where env data was non-finite; never an agent input
NONFINITE = "nonfinite"
