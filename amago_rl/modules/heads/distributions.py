"""Policy distributions of the AMAGO actor (reference: ``amago/nets/policy_dists.py``).

All three are plain ``torch.distributions.Distribution`` subclasses, so they can be passed as
``distribution_class`` to TorchRL's ``ProbabilisticActor``. Their batch shape is the parameter
shape without the last (action) dimension, e.g. ``[B, L, G]`` when built from the per-discount
parameters ``[B, L, G, P]``; the event shape is ``[A]``. Every one exposes
``deterministic_sample`` (what ``ProbabilisticActor`` reads in ``ExplorationType.DETERMINISTIC``),
``mode`` (``ExplorationType.MODE``) and, where it exists in closed form, ``mean``
(``ExplorationType.MEAN``; ``TanhGaussian.mean`` raises ``NotImplementedError`` so TorchRL falls
back on an empirical mean of samples).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints

_Shape = torch.Size | tuple[int, ...] | list[int]


#: Probability floor and cap of the discrete policy (reference ``Discrete``: 1e-3, 0.99): the one
#: default of ``FlooredCategorical``, ``ActorHead`` and the losses' softened buffer actions.
PROB_LOW: float = 1e-3
PROB_HIGH: float = 0.99


def _extended_shape(dist: Distribution, sample_shape: _Shape) -> torch.Size:
    return torch.Size(sample_shape) + dist.batch_shape + dist.event_shape


class FlooredCategorical(Distribution):
    """Categorical over one-hot actions whose probabilities are floored and capped.

    ``probs = clamp(softmax(logits), prob_low, prob_high) / sum(...).detach()``: the floor keeps
    every action explorable and ``log_prob`` finite; renormalising by the *detached* sum follows
    the reference (the gradient flows through the clamped values only).

    Args:
        logits: ``[..., A]`` unnormalised log-probabilities.
        prob_low, prob_high: probability floor and cap (default ``PROB_LOW``, ``PROB_HIGH``).

    Samples are float one-hot vectors ``[..., A]``; ``log_prob(one_hot [..., A]) -> [...]`` is the
    log of the floored probability at the one-hot's argmax. There is no reparameterised sample
    (``rsample`` raises); :meth:`gumbel_rsample` gives a straight-through one for callers that
    want a differentiable one-hot (AMAGO-2's ``DiscreteLikeContinuous``).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = constraints.one_hot
    has_rsample = False

    def __init__(
        self,
        logits: torch.Tensor,
        prob_low: float = PROB_LOW,
        prob_high: float = PROB_HIGH,
        validate_args: bool | None = False,
    ) -> None:
        if logits.dim() < 1:
            raise ValueError(
                f"FlooredCategorical: logits must have an action dimension [..., A], got shape "
                f"{tuple(logits.shape)}."
            )
        if not 0.0 <= prob_low < prob_high <= 1.0:
            raise ValueError(
                f"FlooredCategorical: need 0 <= prob_low < prob_high <= 1, got {prob_low}, {prob_high}."
            )
        self.logits = logits
        self.prob_low = prob_low
        self.prob_high = prob_high
        self.num_actions = logits.shape[-1]
        self.probs = self.soften(torch.softmax(logits, dim=-1), prob_low, prob_high)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    @staticmethod
    def soften(probs: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """Clamp ``probs [..., A]`` to ``[low, high]`` and renormalise by the detached sum."""
        clamped = probs.clamp(low, high)
        return clamped / clamped.sum(-1, keepdim=True).detach()

    @classmethod
    def soften_one_hot(
        cls, one_hot: torch.Tensor, low: float = PROB_LOW, high: float = PROB_HIGH
    ) -> torch.Tensor:
        """The clamped-renormalised version of (buffer) one-hot actions ``[..., A]``, which the
        reference feeds to the critic instead of exact one-hots."""
        return cls.soften(one_hot.float(), low, high)

    @property
    def log_probs(self) -> torch.Tensor:
        """``[..., A]`` log of the floored probabilities."""
        return self.probs.log()

    def _one_hot(self, index: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(index, self.num_actions).to(self.probs.dtype)

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        """``[*sample_shape, ..., A]`` float one-hot samples from the floored probabilities."""
        with torch.no_grad():
            flat = self.probs.reshape(-1, self.num_actions)
            n = math.prod(sample_shape)
            idx = torch.multinomial(flat, n, replacement=True)  # [prod(batch), n]
            idx = (idx if n == 1 else idx.T).reshape(tuple(sample_shape) + tuple(self.batch_shape))
            return self._one_hot(idx)

    def rsample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        raise NotImplementedError(
            "FlooredCategorical has no reparameterised sample; use .probs for an exact expectation "
            "(AMAGO's DPG term) or .gumbel_rsample() for a straight-through one-hot."
        )

    def gumbel_rsample(self, sample_shape: _Shape = (), temperature: float = 0.5) -> torch.Tensor:
        """Straight-through Gumbel-softmax one-hot ``[*sample_shape, ..., A]``: the forward value is
        a hard one-hot, the gradient that of the relaxed sample (AMAGO-2, temperature 0.5)."""
        logp = self.log_probs.expand(_extended_shape(self, sample_shape))
        gumbel = -torch.empty_like(logp).exponential_().log()
        soft = torch.softmax((logp + gumbel) / temperature, dim=-1)
        hard = self._one_hot(soft.argmax(-1))
        return hard + soft - soft.detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``value [*S, ..., A]`` one-hot (or any vector; its argmax is used) -> ``[*S, ...]``."""
        if value.shape[-1] != self.num_actions:
            raise ValueError(
                f"FlooredCategorical.log_prob: expected one-hot actions [..., {self.num_actions}], "
                f"got shape {tuple(value.shape)}."
            )
        idx = value.argmax(-1, keepdim=True)
        logp = self.log_probs
        if idx.shape[:-1] != logp.shape[:-1]:  # (torch.broadcast_shapes is slow Python)
            shape = torch.broadcast_shapes(idx.shape[:-1], logp.shape[:-1])
            logp = logp.expand(*shape, self.num_actions)
            idx = idx.expand(*shape, 1)
        return logp.gather(-1, idx).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """``[...]`` entropy of the floored probabilities."""
        return -(self.probs * self.log_probs).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        """``[..., A]`` argmax one-hot (argmax of the logits, so ties from the floor never matter)."""
        return self._one_hot(self.logits.argmax(-1))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        """Expected one-hot vector, i.e. the floored probabilities ``[..., A]``."""
        return self.probs


class TanhGaussian(Distribution):
    """Normal squashed by ``tanh`` onto ``[-1, 1]^A`` (the reference's default continuous policy).

    Args:
        loc: ``[..., A]`` mean of the pre-tanh Normal.
        scale: ``[..., A]`` std of the pre-tanh Normal (already bounded by the actor head).

    ``log_prob(a [*S, ..., A]) -> [*S, ...]`` sums over ``A``; it clamps ``a`` to ``+-0.99``
    before ``atanh`` (as the reference does) and subtracts the tanh log-determinant
    ``log(1 - a^2)``. ``entropy()`` raises ``NotImplementedError`` (no closed form; TorchRL losses
    catch this and estimate it from samples); :meth:`entropy_estimate` is the Monte Carlo estimate.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = constraints.interval(-1.0, 1.0)
    has_rsample = True
    log_prob_clamp = 0.99

    def __init__(
        self, loc: torch.Tensor, scale: torch.Tensor, validate_args: bool | None = False
    ) -> None:
        if loc.dim() < 1 or loc.shape != scale.shape:
            raise ValueError(
                f"TanhGaussian: loc and scale must both be [..., A] with the same shape, got "
                f"{tuple(loc.shape)} and {tuple(scale.shape)}."
            )
        self.loc = loc
        self.scale = scale
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    def rsample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        """``[*sample_shape, ..., A]`` reparameterised samples ``tanh(loc + scale * eps)``."""
        shape = _extended_shape(self, sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return torch.tanh(self.loc + self.scale * eps)

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        a = value.clamp(-self.log_prob_clamp, self.log_prob_clamp)
        pre = torch.atanh(a)
        var = self.scale.pow(2)
        normal_lp = (
            -((pre - self.loc).pow(2)) / (2 * var) - self.scale.log() - 0.5 * math.log(2 * math.pi)
        )
        return (normal_lp - torch.log1p(-a.pow(2))).sum(-1)

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError(
            "TanhGaussian.entropy has no closed form; use entropy_estimate(n) (Monte Carlo)."
        )

    def entropy_estimate(self, num_samples: int = 16) -> torch.Tensor:
        """``[...]`` Monte Carlo entropy ``-mean_n log_prob(rsample)`` (differentiable). Biased
        where samples fall beyond the ``+-0.99`` log-prob clamp, i.e. for saturated policies."""
        samples = self.rsample((num_samples,))
        return -self.log_prob(samples).mean(0)

    @property
    def mode(self) -> torch.Tensor:
        """``tanh(loc)`` ``[..., A]``: the reference's deterministic action."""
        return torch.tanh(self.loc)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError(
            "TanhGaussian.mean has no closed form; use .mode (tanh(loc)) or average samples."
        )


class MultiBinary(Distribution):
    """Independent Bernoulli per action dimension (multi-binary action spaces).

    Args:
        logits: ``[..., A]`` Bernoulli logits.

    Samples are float ``{0, 1}`` ``[..., A]``. ``log_prob(a) -> [...]`` and ``entropy() -> [...]``
    are the *mean* over the ``A`` dimensions (as in the reference, so the BC term's scale does not
    grow with the number of switches).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(self, logits: torch.Tensor, validate_args: bool | None = False) -> None:
        if logits.dim() < 1:
            raise ValueError(
                f"MultiBinary: logits must have an action dimension [..., A], got shape "
                f"{tuple(logits.shape)}."
            )
        self.logits = logits
        self.probs = torch.sigmoid(logits)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        with torch.no_grad():
            probs = self.probs.expand(_extended_shape(self, sample_shape))
            return torch.bernoulli(probs)

    def rsample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        raise NotImplementedError("MultiBinary has no reparameterised sample.")

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = value.to(self.logits.dtype)
        logits, value = torch.broadcast_tensors(self.logits, value)
        # -BCE-with-logits is the numerically stable Bernoulli log-likelihood.
        lp = -torch.nn.functional.binary_cross_entropy_with_logits(logits, value, reduction="none")
        return lp.mean(-1)

    def entropy(self) -> torch.Tensor:
        p = self.probs
        ent = torch.nn.functional.binary_cross_entropy_with_logits(self.logits, p, reduction="none")
        return ent.mean(-1)

    @property
    def mode(self) -> torch.Tensor:
        """``[..., A]`` float ``probs > 0.5``."""
        return (self.probs > 0.5).to(self.logits.dtype)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        return self.probs
