"""AMAGO's actor-critic objective as a TorchRL ``LossModule`` (AMAGO_REFERENCE.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.modules import set_recurrent_mode
from torchrl.objectives import LossModule

from amago_rl import keys
from amago_rl.config import LOSS_DEFAULTS as _D
from amago_rl.errors import check_last_dim, missing_key_error
from amago_rl.modules.heads.actor import POLICY_PARAMS, ActorHead
from amago_rl.modules.heads.critic import CriticEnsemble
from amago_rl.modules.heads.distributions import PROB_HIGH, PROB_LOW
from amago_rl.objectives.filters import AdvantageFilter, NoFilter, make_filter
from amago_rl.objectives.loss_utils import (
    masked_mean,
    policy_entropy,
    validate_modules,
    value_diagnostics,
)
from amago_rl.objectives.policy_actions import buffer_actions_for_critic, policy_value_actions
from amago_rl.objectives.popart import PopArt
from amago_rl.objectives.value_targets import nstep_targets, reduce_ensemble

#: Accepted values of ``AMAGOLoss(bootstrap=...)``.
BOOTSTRAP_MODES = ("policy", "greedy")


@dataclass
class _Batch:
    """What one encoder pass gives both losses (``T = L - 1`` transitions)."""

    valid: torch.Tensor  # [B, T, 1] bool: both tokens of the transition are real
    action: torch.Tensor  # [B, T, 1, A] buffer actions (0 where invalid)
    state: torch.Tensor  # [B, T, D] states s_t
    dist: torch.distributions.Distribution  # the policy on [B, T, G]
    out_data: torch.Tensor  # [B, T, C, G, X] critic outputs at the buffer actions
    all_q: torch.Tensor | None  # [B, T, C, G, A] all-action critic outputs, if discrete
    target: torch.Tensor | None  # [B, T, G] TD targets in return units (value loss only)


class AMAGOLoss(LossModule):
    """AMAGO: multi-discount actor-critic on sequences, trained through one shared encoder.

    **Data contract.** The input is a TensorDict of ``[B, L]`` *tokens*, one per env step, time
    last. Token ``t`` holds the encoder's inputs (observation keys, ``prev_action``,
    ``prev_reward``, ``time_idx``, ``is_init``), ``mask`` ``[B, L, 1]`` bool (False on right
    padding), ``action`` ``[B, L, A]`` (``a_t``: one-hot float / ``[-1, 1]`` / ``{0, 1}``) and
    ``("next", "reward" | "terminated" | "done")`` ``[B, L, 1]``. A trajectory's final token (the
    observation after its last action; zero action and ``next`` entries) is stored so truncated
    episodes can bootstrap. Transition ``t = 0..L-2`` is valid iff ``mask[t] & mask[t+1]``; it uses
    ``s_t``, ``action[t]``, ``reward_multiplier * ("next","reward")[t]`` and bootstraps from
    ``s_{t+1}`` unless ``terminated[t]`` (truncation bootstraps). Nothing relies on pad values.

    **Computation.** The encoder runs once over all ``L`` tokens (sequence mode) giving states
    ``s [B, L, D]``. TD targets (no grad): target actor (or, with ``bootstrap='greedy'``, the
    critics' greedy action) + target critics at ``s_{t+1}``, critic outputs de-normalised by
    PopArt, ``num_critics_td`` members drawn with replacement and reduced by min
    (``online_coeff > 0``) or mean, then n-step returns per discount. PopArt statistics move
    towards the targets (in training mode). Critic loss: squared error between ``w Q + b`` and the
    normalised target, masked mean over ``[B, L-1, C, G]``, times ``critic_loss_weight``. Actor
    loss, masked mean over ``[B, L-1, G]``: ``-online_coeff * (w min_c Q(s, a~pi) + b)`` (the critic
    parameters and ``s`` are detached there, so only the actor and, through its input, the encoder
    learn from it) ``- offline_coeff * f(A) log pi(a_t|s_t)`` with ``A = mean_c Q(s, a_t) -
    mean_c Q(s, a~pi)`` on raw critic outputs and ``f`` the advantage filter. Discrete policies use
    the exact expectation over their floored probabilities with an all-action critic.

    Defaults: :class:`~amago_rl.config.LossConfig` (the reference's), which also documents each
    option for the command line (``agent.loss.<option>``).

    Args:
        encoder: TensorDict module writing ``state_embedding`` ``[B, L, D]`` (e.g. a
            ``TensorDictSequential`` of a timestep and a trajectory encoder).
        actor_head: :class:`~amago_rl.modules.heads.ActorHead` (``[..., D] -> [..., G, P]``).
        critic: scalar :class:`~amago_rl.modules.heads.CriticEnsemble` (``num_bins=None``).
        gammas: optional check: must equal ``critic.gammas`` (the discounts live in the critic).
        online_coeff, offline_coeff: weights of the DPG and filtered-BC terms (1.0, 0.1).
        critic_loss_weight: multiplies the critic loss (10.0).
        reward_multiplier: scales rewards before targets are built (10.0).
        num_critics_td: critics drawn for the TD target (2).
        n_step: transitions summed before bootstrapping (1).
        popart, popart_beta, popart_init_nu: PopArt switch and parameters (True, 5e-4, 100).
        popart_shared_scale: normalise all discounts by one (the largest) sigma (True) instead of
            one sigma per discount (the reference); see :class:`~amago_rl.objectives.PopArt`.
        filter, filter_kwargs: advantage filter by name (``binary``, ``exp``, ``leaky_relu``,
            ``none``) or callable, see :mod:`amago_rl.objectives.filters`.
        num_actions_value_critic: policy samples ``K`` per next state in the target (1).
        num_actions_value_actor: policy samples ``K`` per state in the actor loss (1).
        use_target_actor: next actions from the target actor (True) or the online one.
        soften_buffer_actions: discrete buffer one-hots are clamped to the policy's probability
            floor/cap before entering the critic, as in the reference (True).
        bootstrap: how ``V(s_{t+1})`` is formed. ``"policy"`` (AMAGO): the target actor's
            expectation (``num_actions_value_critic`` samples). ``"greedy"`` (discrete actions with
            an all-action scalar critic only): the value of the action with the highest
            ensemble-mean target value (a Q-learning backup; softened like buffer actions when
            ``soften_buffer_actions``), so the critic learns the greedy policy's values instead of
            those of the lagging, stochastic actor; ``use_target_actor`` and
            ``num_actions_value_critic`` are then unused. Not in AMAGO; see benchmarks/RESULTS.md.

    Returns (``forward``): TensorDict with ``loss_actor``, ``loss_critic`` and detached
    diagnostics: ``q_mean`` ``[G]`` (return units), ``td_target_mean`` ``[G]``, ``td_target_min``,
    ``td_target_max``, ``popart_mu``/``popart_sigma`` ``[G]``, ``filter_accept_rate`` (share of
    valid (step, discount) pairs with a positive advantage), ``filter_weight_mean`` (mean filter
    weight), ``policy_entropy`` (main discount). :meth:`value_loss` and :meth:`actor_loss` give
    each loss alone (as TorchRL's SAC / TD3 losses do); ``forward`` is both, from one pass.

    There is no TorchRL value estimator: :meth:`make_value_estimator` raises and says which
    constructor options set the targets.
    """

    @dataclass
    class _AcceptedKeys:
        """Remappable input keys (``loss.set_keys(action="my_action")``).

        ``reward``, ``done`` and ``terminated`` are read under ``"next"``.
        """

        state_embedding: NestedKey = keys.STATE_EMBEDDING
        policy_params: NestedKey = POLICY_PARAMS
        action: NestedKey = keys.ACTION
        reward: NestedKey = keys.REWARD
        done: NestedKey = keys.DONE
        terminated: NestedKey = keys.TERMINATED
        mask: NestedKey = keys.MASK

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss_actor", "loss_critic"]

    encoder: TensorDictModuleBase
    actor_head: ActorHead
    actor_head_params: TensorDictParams
    target_actor_head_params: TensorDictParams
    critic: CriticEnsemble
    critic_params: TensorDictParams
    target_critic_params: TensorDictParams
    gammas: torch.Tensor

    #: How discrete policies produce the actions whose value is V(s) (see policy_value_actions).
    discrete_value_mode = "probs"
    #: Whether the critic outputs two-hot logits (``num_bins``) instead of scalars.
    two_hot_critic = False

    def __init__(
        self,
        encoder: TensorDictModuleBase,
        actor_head: ActorHead,
        critic: CriticEnsemble,
        *,
        gammas: Sequence[float] | None = None,
        online_coeff: float = 1.0,
        offline_coeff: float = 0.1,
        critic_loss_weight: float = _D.critic_loss_weight,
        reward_multiplier: float = _D.reward_multiplier,
        num_critics_td: int = _D.num_critics_td,
        n_step: int = _D.n_step,
        popart: bool = _D.popart,
        popart_beta: float = _D.popart_beta,
        popart_init_nu: float = _D.popart_init_nu,
        popart_shared_scale: bool = _D.popart_shared_scale,
        filter: str | AdvantageFilter = _D.filter,
        filter_kwargs: dict[str, Any] | None = None,
        num_actions_value_critic: int = _D.num_actions_value_critic,
        num_actions_value_actor: int = 1,
        use_target_actor: bool = _D.use_target_actor,
        soften_buffer_actions: bool = True,
        bootstrap: str = _D.bootstrap,
    ) -> None:
        super().__init__()
        validate_modules(type(self).__name__, actor_head, critic, gammas, self.two_hot_critic)
        self._check_bootstrap(bootstrap, actor_head, critic)
        if num_actions_value_critic < 1 or num_actions_value_actor < 1 or n_step < 1:
            raise ValueError(
                f"{type(self).__name__}: num_actions_value_critic, num_actions_value_actor and "
                f"n_step must be >= 1, got {num_actions_value_critic}, {num_actions_value_actor}, {n_step}."
            )
        if online_coeff < 0 or offline_coeff < 0:
            raise ValueError(f"{type(self).__name__}: online_coeff and offline_coeff must be >= 0.")
        self.encoder = encoder
        self.convert_to_functional(actor_head, "actor_head", create_target_params=use_target_actor)
        self.convert_to_functional(critic, "critic", create_target_params=True)
        self.register_buffer("gammas", critic.gammas.detach().clone())
        self.kind = actor_head.kind
        self.online_coeff = online_coeff
        self.offline_coeff = offline_coeff
        self.critic_loss_weight = critic_loss_weight
        self.reward_multiplier = reward_multiplier
        self.num_critics_td = num_critics_td
        self.n_step = n_step
        self.use_popart = popart
        # popart=False keeps an identity PopArt (mu 0, sigma 1, w 1, b 0) that is never updated.
        self.popart = PopArt(
            critic.num_gammas,
            popart_beta,
            popart_init_nu if popart else 1.0,
            shared_scale=popart_shared_scale,
        )
        self.filter = make_filter(filter, **(filter_kwargs or {}))
        self.num_actions_value_critic = num_actions_value_critic
        self.num_actions_value_actor = num_actions_value_actor
        self.use_target_actor = use_target_actor
        self.soften_buffer_actions = soften_buffer_actions
        self.bootstrap = bootstrap
        self.ensemble_mode = "min" if online_coeff > 0 else "mean"

    def _check_bootstrap(
        self, bootstrap: str, actor_head: ActorHead, critic: CriticEnsemble
    ) -> None:
        """Refuse an unknown ``bootstrap`` or a greedy backup the critic cannot give."""
        name = type(self).__name__
        if bootstrap not in BOOTSTRAP_MODES:
            raise ValueError(
                f"{name}: bootstrap must be one of {BOOTSTRAP_MODES}, got {bootstrap!r}."
            )
        if bootstrap == "greedy" and (
            actor_head.kind != "discrete" or critic.action_input or self.two_hot_critic
        ):
            raise ValueError(
                f"{name}: bootstrap='greedy' needs discrete actions and a scalar all-action critic "
                f"(CriticEnsemble(action_input=False, num_bins=None)); got {actor_head.kind} "
                f"actions, action_input={critic.action_input}, two-hot={self.two_hot_critic}. "
                "Use bootstrap='policy'."
            )

    # ------------------------------------------------------------------ TorchRL plumbing
    @property
    def in_keys(self) -> list[NestedKey]:
        k = self.tensor_keys
        wanted = [*self.encoder.in_keys, k.action, k.mask]
        wanted += [("next", k.reward), ("next", k.done), ("next", k.terminated)]
        return list(dict.fromkeys(wanted))

    def _forward_value_estimator_keys(self, **kwargs: Any) -> None:
        # Targets are built in-loss from one encoder pass; there is no separate value estimator.
        pass

    def make_value_estimator(self, value_type: Any = None, **hyperparams: Any) -> None:
        """Not available: AMAGO builds its own targets (see the class docstring), so a TorchRL
        value estimator would be ignored. Raises ``NotImplementedError`` saying what to set."""
        raise NotImplementedError(
            f"{type(self).__name__} does not use a TorchRL value estimator (asked for "
            f"{value_type!r}): it computes n-step TD targets for every discount itself, from one "
            "encoder pass, with target actor + target critics and PopArt. Configure them with the "
            "constructor: the discounts live in the critic (CriticEnsemble(gammas=...), "
            "amago_rl.discounts.make_gammas / agent.gamma, agent.multigammas), n_step=..., "
            "num_critics_td=..., reward_multiplier=..., bootstrap='policy' | 'greedy' "
            "(agent.loss.<option> on the command line)."
        )

    def _get(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise missing_key_error(key, td.keys(True, True), type(self).__name__)
        return value

    # ------------------------------------------------------------------ hooks (multi-task overrides)
    def _values(self, out: torch.Tensor) -> torch.Tensor:
        """Critic output ``[..., C, G, 1]`` -> ``[..., C, G]`` raw (PopArt-normalised space)."""
        return out.squeeze(-1)

    def _to_return_units(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., G]`` values from :meth:`_values` -> return units."""
        return self.popart.denormalize(values)

    def _dpg_objective(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., G]`` policy values from :meth:`_values` -> the normalised value to maximise."""
        return self.popart(values, normalized=True)

    def _critic_loss_terms(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``out [B, T, C, G, 1]``, ``target [B, T, G]`` -> ``[B, T, C, G]`` squared errors."""
        y = self.popart.normalize(target).unsqueeze(-2)
        return (self.popart(self._values(out), normalized=True) - y).pow(2)

    # ------------------------------------------------------------------ pieces
    def _critic_at(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``state [B, T, D]``, ``action [*K, B, T, G|1, A]`` -> ``[*K, B, T, C, G, X]``."""
        if self.critic.action_input:
            return self.critic(state, action)
        return CriticEnsemble.weight_actions(self.critic(state), action)

    def _value_actions(self, dist: torch.distributions.Distribution, num: int) -> torch.Tensor:
        mode = self.discrete_value_mode if self.critic.action_input else "probs"
        return policy_value_actions(dist, self.kind, num, discrete_mode=mode)

    # Target and detached parameters are swapped in with preserve_module_state=False: by default
    # tensordict would wrap them in fresh nn.Parameters (requires_grad=True) and write those back
    # into the target TensorDictParams when the context exits.
    def _actor_params(self, td: TensorDictBase, target: bool) -> torch.Tensor:
        """Policy parameters ``[B, L', G, P]``; ``target`` uses the target actor on ``s_1..s_{L-1}``."""
        params = self.target_actor_head_params if target else self.actor_head_params
        td_in = td.select(*self.actor_head.in_keys)
        with params.to_module(self.actor_head, preserve_module_state=not target):
            out = self.actor_head(td_in[:, 1:] if target else td_in)
        return self._get(out, self.tensor_keys.policy_params)

    @torch.no_grad()
    def _next_state_values(self, td: TensorDictBase, params: torch.Tensor) -> torch.Tensor:
        """``[B, T, G]`` bootstrap values of ``s_1 .. s_{L-1}`` in return units."""
        state_next = self._get(td, self.tensor_keys.state_embedding)[:, 1:]
        if self.bootstrap == "greedy":
            with self.target_critic_params.to_module(self.critic, preserve_module_state=False):
                values = self._values(self._greedy_values(self.critic(state_next)))
        else:
            if self.use_target_actor:
                params_next = self._actor_params(td, target=True)
            else:
                params_next = params[:, 1:]
            dist = self.actor_head.distribution(params_next)
            actions = self._value_actions(dist, self.num_actions_value_critic)
            with self.target_critic_params.to_module(self.critic, preserve_module_state=False):
                values = self._values(self._critic_at(state_next, actions)).mean(0)  # [B, T, C, G]
        values = self._to_return_units(values)
        return reduce_ensemble(values, self.num_critics_td, self.ensemble_mode, ensemble_dim=-2)

    def _greedy_values(self, all_q: torch.Tensor) -> torch.Tensor:
        """``all_q [B, T, C, G, A]`` -> ``[B, T, C, G, 1]``: every member's value of the action with
        the highest ensemble-mean value (per discount), that action softened like buffer actions."""
        best = all_q.mean(-3).argmax(-1)  # [B, T, G]
        one_hot = torch.nn.functional.one_hot(best, all_q.shape[-1])
        greedy = buffer_actions_for_critic(
            one_hot, self.kind, self.soften_buffer_actions, *self._prob_bounds()
        )
        return CriticEnsemble.weight_actions(all_q, greedy)

    def _policy_values(
        self,
        state: torch.Tensor,
        dist: torch.distributions.Distribution,
        all_q: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """``[B, T, C, G]`` critic values at policy actions, differentiable w.r.t. the actions only
        (None when no term needs them). ``all_q``: all-action values of the data states."""
        needs_grad = self.online_coeff > 0
        needs_baseline = self.offline_coeff > 0 and not isinstance(self.filter, NoFilter)
        if not (needs_grad or needs_baseline):
            return None
        with torch.set_grad_enabled(needs_grad and torch.is_grad_enabled()):
            actions = self._value_actions(dist, self.num_actions_value_actor)
            if all_q is not None:  # all-action critic: reuse its values, detached
                out = CriticEnsemble.weight_actions(all_q.detach(), actions)
            else:
                detached = self.critic_params.detach()
                with detached.to_module(self.critic, preserve_module_state=False):
                    out = self.critic(state.detach(), actions)
        return self._values(out).mean(0)

    # ------------------------------------------------------------------ forward
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Both losses from one encoder pass: :meth:`value_loss` and :meth:`actor_loss`'s
        entries (``loss_actor``, ``loss_critic`` and their diagnostics)."""
        batch = self._encode(tensordict, with_targets=True)
        value = self._value_terms(batch)
        actor = self._actor_terms(batch)
        out = TensorDict(
            {"loss_actor": actor.pop("loss_actor"), "loss_critic": value.pop("loss_critic")},
            batch_size=[],
        )
        return out.update(value).update(actor)

    def value_loss(self, tensordict: TensorDictBase) -> TensorDict:
        """The critic loss alone: ``loss_critic`` and the value diagnostics (``q_mean``
        ``[G]``, ``td_target_mean`` ``[G]``, ``td_target_min`` / ``_max``, ``popart_mu`` /
        ``popart_sigma`` ``[G]``). Runs the encoder and, in training mode, moves PopArt's (and
        the encoder's input-normalisation) statistics, and encoder dropout draws its own masks;
        to train both heads, call the module itself (one encoder pass)."""
        return self._value_terms(self._encode(tensordict, with_targets=True))

    def actor_loss(self, tensordict: TensorDictBase) -> TensorDict:
        """The actor loss alone: ``loss_actor`` and the policy diagnostics
        (``policy_entropy``, and ``filter_accept_rate`` / ``filter_weight_mean`` when the BC
        term is filtered). Runs the encoder (moving its input-normalisation statistics in
        training mode); no TD targets are built."""
        return self._actor_terms(self._encode(tensordict, with_targets=False))

    def _encode(self, tensordict: TensorDictBase, with_targets: bool) -> _Batch:
        """One encoder pass over ``[B, L]`` tokens and everything both losses read from it."""
        k = self.tensor_keys
        td = tensordict.clone(False)  # shallow: the encoder's outputs stay out of the caller's td
        if td.batch_dims != 2 or td.batch_size[1] < 2:
            raise ValueError(
                f"{type(self).__name__}: expected a TensorDict of sequences with batch shape [B, L], "
                f"L >= 2, got {tuple(td.batch_size)}."
            )
        b, length = td.batch_size
        t = length - 1
        mask = self._get(td, k.mask).reshape(b, length).bool()
        valid = (mask[:, :-1] & mask[:, 1:]).unsqueeze(-1)  # [B, T, 1]

        def transition(key: NestedKey) -> torch.Tensor:  # [B, L, 1] entry -> [B, T, 1]
            return self._get(td, key)[:, :-1].reshape(b, t, 1)

        action = self._get(td, k.action)[:, :-1]
        check_last_dim(action, self.actor_head.action_dim, k.action, type(self).__name__)
        action = torch.where(valid, action.float(), 0.0).unsqueeze(-2)  # [B, T, 1, A]

        with set_recurrent_mode(True):
            self.encoder(td)
        state = self._get(td, k.state_embedding)  # [B, L, D]
        params = self._actor_params(td, target=False)  # [B, L, G, P]
        dist = self.actor_head.distribution(params[:, :-1])  # batch [B, T, G]

        target = None
        if with_targets:
            reward = torch.where(valid, transition(("next", k.reward)).float(), 0.0)
            reward = reward * self.reward_multiplier
            terminated = transition(("next", k.terminated)).bool() & valid
            done = transition(("next", k.done)).bool() & valid | terminated
            next_values = self._next_state_values(td, params.detach())
            with torch.no_grad():
                target = nstep_targets(
                    reward, next_values, self.gammas, terminated, valid, done, self.n_step
                )
                if self.training and self.use_popart:
                    self.popart.update_stats(target, valid)

        state_t = state[:, :-1]
        critic_action = buffer_actions_for_critic(
            action, self.kind, self.soften_buffer_actions, *self._prob_bounds()
        )
        all_q = None
        with self.critic_params.to_module(self.critic):
            if self.critic.action_input:
                out_data = self.critic(state_t, critic_action)  # [B, T, C, G, X]
            else:  # one pass gives Q of the buffer action and of the policy
                all_q = self.critic(state_t)  # [B, T, C, G, A]
                out_data = CriticEnsemble.weight_actions(all_q, critic_action)
        return _Batch(valid, action, state_t, dist, out_data, all_q, target)

    def _value_terms(self, batch: _Batch) -> TensorDict:
        if batch.target is None:
            raise RuntimeError("_value_terms needs a batch encoded with_targets=True.")
        critic_terms = self._critic_loss_terms(batch.out_data, batch.target)  # [B, T, C, G]
        loss = self.critic_loss_weight * masked_mean(critic_terms, batch.valid.unsqueeze(-1))
        with torch.no_grad():
            q = self._to_return_units(self._values(batch.out_data))
            diag = value_diagnostics(q, batch.target, batch.valid, self.popart)
        return TensorDict({"loss_critic": loss, **diag}, batch_size=[])

    def _actor_terms(self, batch: _Batch) -> TensorDict:
        valid, dist = batch.valid, batch.dist
        v_data = self._values(batch.out_data).detach()  # [B, T, C, G]
        v_pi = self._policy_values(batch.state, dist, batch.all_q)
        terms = torch.zeros_like(v_data[..., 0, :])  # [B, T, G]
        if self.online_coeff > 0 and v_pi is not None:
            terms = terms - self.online_coeff * self._dpg_objective(v_pi.amin(-2))
        adv = None
        if self.offline_coeff > 0:
            weights = torch.ones_like(terms)
            if v_pi is not None and not isinstance(self.filter, NoFilter):
                adv = v_data.mean(-2) - v_pi.detach().mean(-2)  # [B, T, G]
                weights = self.filter(adv).detach()
            terms = terms - self.offline_coeff * weights * dist.log_prob(batch.action)
        out = TensorDict({"loss_actor": masked_mean(terms, valid)}, batch_size=[])
        with torch.no_grad():
            out["policy_entropy"] = masked_mean(policy_entropy(dist)[..., -1:], valid)
            if adv is not None:
                out["filter_accept_rate"] = masked_mean((adv > 0).float(), valid)
                out["filter_weight_mean"] = masked_mean(self.filter(adv), valid)
        return out

    def _prob_bounds(self) -> tuple[float, float]:
        head = self.actor_head
        return getattr(head, "prob_low", PROB_LOW), getattr(head, "prob_high", PROB_HIGH)
