"""The model as the user wrote it (issue 23 A1–A3, A5, B7, B8): forward hooks that change
the output are honoured on every path (the structured path, which computes from the
modules alone, is not taken), hooks that do not are run once and left out; tensors held
outside the module tree are named; models whose output depends on the batch or on the
call count are refused; the user's buffers are never written; the closed-form head is
proved on every input it is used for."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import fishsym
from fishsym.errors import ModelWarning, ShapeError, UnsupportedModelError
from fishsym.montecarlo import estimate

sys.path.insert(0, str(Path(__file__).parents[1] / "variance"))
from conftest import reference  # noqa: E402  (the brute-force autograd oracle)

#: fast path against the brute-force float64 oracle: round-off only
RTOL = 1e-10


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


X = torch.randn(10, 4, generator=_gen(1), dtype=torch.float64)


def _scale_activation(model):
    model[1].register_forward_hook(lambda mod, args, out: 2 * out)


def _scale_input(model):
    model[2].register_forward_pre_hook(lambda mod, args: (3 * args[0],))


def _halve_output(model):
    model.register_forward_hook(lambda mod, args, out: 0.5 * out)


def _in_place(model):
    def hook(mod, args, out):
        out.mul_(1.5)

    model[0].register_forward_hook(hook)


HOOKS = {
    "forward hook": _scale_activation,
    "pre-hook": _scale_input,
    "hook on the model": _halve_output,
    "in-place hook": _in_place,
}


@pytest.mark.parametrize("hook", list(HOOKS))
def test_hooks_that_change_the_output_are_honoured(hook):
    """A1: the structured path ignored hooks (50–100 % wrong). Every numeric entry point
    now equals the oracle on the hooked model."""
    model = _mlp()
    HOOKS[hook](model)
    truth = reference(model, X, "categorical")
    res = fishsym.fisher_variances(model, X, "categorical")
    assert res.path == "graph"
    for name in truth["fisher"]:
        for key in ("fisher", "var1", "var2"):
            torch.testing.assert_close(
                getattr(res, key)[name], truth[key][name].mean(0), rtol=RTOL, atol=1e-14
            )
    with pytest.raises(UnsupportedModelError, match="hooks"):
        fishsym.fisher_variances(model, X, "categorical", path="structured")
    exact = fishsym.reference.exact_moments(model, X, "categorical")
    for name in truth["fisher"]:
        torch.testing.assert_close(exact["mean1"][name], truth["fisher"][name], rtol=RTOL, atol=0)
    est = fishsym.diagonal_fisher(model, X, "categorical", generator=_gen(0))
    for name in truth["fisher"]:
        torch.testing.assert_close(
            est.value[name], truth["fisher"][name].mean(0), rtol=RTOL, atol=0
        )


def test_recording_hooks_run_once_and_keep_usable_tensors(unchanged):
    """B8: a recording hook ran 83 times inside diagonal_fisher, on internal tensors.
    Hooks that do not change the output run once per entry point (on the inputs its
    probe checks) and are left out afterwards; what they keep is an ordinary tensor."""
    model = _mlp()
    seen = []
    model[1].register_forward_hook(lambda mod, args, out: seen.append(out))
    before = unchanged.snapshot(model)
    calls = {
        "fisher_variances": lambda: fishsym.fisher_variances(model, X, "categorical"),
        "diagonal_fisher": lambda: fishsym.diagonal_fisher(
            model, X, "categorical", exact=False, max_labels=4, generator=_gen(0)
        ),
        "diagonal_fisher float32": lambda: fishsym.diagonal_fisher(
            model,
            X,
            "categorical",
            exact=False,
            max_labels=4,
            dtype=torch.float32,
            generator=_gen(0),
        ),
        "diagonal_fisher exact": lambda: fishsym.diagonal_fisher(
            model, X, "categorical", generator=_gen(0)
        ),
        "graph path": lambda: fishsym.fisher_variances(model, X, "categorical", path="graph"),
        "estimate": lambda: estimate(model, X, "categorical", 2, 2, _gen(1)),
        "exact_moments": lambda: fishsym.reference.exact_moments(model, X, "categorical"),
    }
    for what, call in calls.items():
        seen.clear()
        with pytest.warns(ModelWarning, match="do not change its output"):
            call()
        assert len(seen) == 1, (what, len(seen))
        kept = seen[0]
        assert type(kept) is torch.Tensor and kept.shape == (10, 5), what
        # the working dtype's activation (float32 for the float32 call)
        torch.testing.assert_close(
            kept.double(), torch.tanh(model[0](X)).detach(), rtol=1e-6, atol=1e-6
        )
    unchanged.check(before, model)


def test_structured_path_kept_for_passive_hooks():
    model = _mlp()
    model[1].register_forward_hook(lambda mod, args, out: None)
    with pytest.warns(ModelWarning):
        res = fishsym.fisher_variances(model, X, "categorical")
    assert res.path == "structured"


def test_global_hooks_keep_the_structured_path_away():
    model = _mlp()
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, args, out: out * 2 if isinstance(mod, nn.Tanh) else None
    )
    try:
        truth = reference(model, X, "categorical")
        res = fishsym.fisher_variances(model, X, "categorical")
    finally:
        handle.remove()
    assert res.path == "graph"
    torch.testing.assert_close(res.fisher["0.weight"], truth["fisher"]["0.weight"].mean(0))


class _Outside(nn.Module):
    """A scale held in a plain list, and one captured by a closure."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3).double()
        self.extra = [nn.Parameter(torch.full((3,), 1.5, dtype=torch.float64))]
        shift = nn.Parameter(torch.ones(3, dtype=torch.float64))
        self.shift = lambda h: h + shift

    def forward(self, x):
        return self.shift(self.lin(x) * self.extra[0])


def test_parameters_outside_the_module_tree_are_named_and_constant():
    """A2: such tensors are constants of h (named in a warning); the Fisher of the
    registered parameters equals the oracle's."""
    model = _Outside()
    with pytest.warns(ModelWarning, match=r"extra\[0\].*closure variable 'shift'"):
        res = fishsym.fisher_variances(model, X, "categorical")
    truth = reference(model, X, "categorical")
    assert set(res.fisher) == {"lin.weight", "lin.bias"}
    for name in res.fisher:
        torch.testing.assert_close(
            res.fisher[name], truth["fisher"][name].mean(0), rtol=RTOL, atol=0
        )


def test_batch_statistics_in_eval_mode_are_refused():
    """A5: BatchNorm without running statistics normalises by the batch in eval mode."""
    model = (
        nn.Sequential(
            nn.Linear(4, 5),
            nn.BatchNorm1d(5, track_running_stats=False),
            nn.Tanh(),
            nn.Linear(5, 3),
        )
        .double()
        .eval()
    )
    for call in (
        lambda: fishsym.fisher_variances(model, X, "categorical"),
        lambda: fishsym.diagonal_fisher(model, X, "categorical", generator=_gen(0)),
        lambda: fishsym.reference.exact_moments(model, X, "categorical"),
    ):
        with pytest.raises(UnsupportedModelError, match="track_running_stats=False"):
            call()


class _Counter(nn.Module):
    def __init__(self, ema=False):
        super().__init__()
        self.lin = nn.Linear(4, 3).double()
        self.ema = ema
        self.register_buffer("calls", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(4, dtype=torch.float64))

    def forward(self, x):
        if self.ema:
            self.mean.mul_(0.9).add_(0.1 * x.mean(0))
            return self.lin(x - self.mean)
        self.calls += 1
        return self.lin(x)


@pytest.mark.parametrize("ema", [False, True])
def test_buffers_written_in_forward(ema, unchanged):
    """B7: the private copy shared the user's buffers, and the write crashed inside the
    transforms with a raw error. The user's buffers stay as they were; the model is
    refused with a named error."""
    model = _Counter(ema)
    before = unchanged.snapshot(model)
    for call in (
        lambda: fishsym.fisher_variances(model, X, "categorical"),
        lambda: fishsym.diagonal_fisher(model, X, "categorical", generator=_gen(0)),
        lambda: estimate(model, X, "categorical", 2, 2, _gen(1)),
        lambda: fishsym.reference.exact_moments(model, X, "categorical"),
    ):
        with pytest.raises(UnsupportedModelError, match="writes its buffer"):
            call()
    unchanged.check(before, model)


@pytest.mark.parametrize("kind", ["parametrization", "hook"])
def test_spectral_norm_in_training_mode(kind, unchanged):
    """B7: spectral normalisation in training mode advanced the user's power iteration."""
    torch.manual_seed(0)
    lin = nn.Linear(4, 3).double()
    if kind == "parametrization":
        lin = nn.utils.parametrizations.spectral_norm(lin)
    else:
        lin = nn.utils.spectral_norm(lin)
    model = nn.Sequential(nn.Linear(4, 4).double(), nn.Tanh(), lin)
    before = unchanged.snapshot(model)
    with pytest.raises(UnsupportedModelError, match="spectral normalisation"):
        fishsym.fisher_variances(model, X, "categorical")
    unchanged.check(before, model)
    if kind == "hook":
        return  # the deprecated hook form cannot be copied (a computed .weight attribute)
    model.eval()  # then it is a fixed reparametrisation
    truth = reference(model, X, "categorical")
    res = fishsym.fisher_variances(model, X, "categorical")
    for name in res.fisher:
        torch.testing.assert_close(
            res.fisher[name], truth["fisher"][name].mean(0), rtol=RTOL, atol=0
        )


class _CappedHead(nn.Module):
    """A head whose logits are capped in place; the cap fires only for the later inputs."""

    def __init__(self, cap):
        super().__init__()
        self.body, self.head, self.cap = nn.Linear(6, 8), nn.Linear(8, 5), cap
        gen = _gen(7)
        with torch.no_grad():  # small logits for ordinary inputs, large for the late ones
            self.body.weight.copy_(0.05 + 0.01 * torch.randn(8, 6, generator=gen))
            self.body.bias.zero_()
            self.head.weight.copy_(0.5 + 0.1 * torch.randn(5, 8, generator=gen))
            self.head.bias.copy_(0.1 * torch.randn(5, generator=gen))

    def forward(self, x):
        h = self.head(torch.tanh(self.body(x)))
        return h.clamp_(max=self.cap)


class _LateReuse(nn.Module):
    """The head's weight enters h a second way, for the later inputs only."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(6, 8), nn.Linear(8, 5)

    def forward(self, x):
        z = torch.tanh(self.body(x))
        h = self.head(z)
        late = (x[:, :1] > 5).to(x.dtype)
        h += late * torch.tanh(z @ self.head.weight.T)
        return h


def _late_inputs():
    x = torch.randn(40, 6, generator=_gen(3), dtype=torch.float64)
    x[30:] = 8.0  # the later inputs: large, and past the reuse threshold
    return x


@pytest.mark.parametrize("make", [lambda: _CappedHead(2.0), _LateReuse])
def test_the_head_is_proved_on_every_input(make):
    """A3: proved on the first 8 inputs only, the head was reported exact while 27 %
    (cap: 155 %) wrong. Now it is sampled, and the estimate holds the exact Fisher."""
    torch.manual_seed(0)
    model = make().double()
    x = _late_inputs()
    with torch.no_grad():
        h = model(x)
        if isinstance(model, _CappedHead):
            raw = model.head(torch.tanh(model.body(x)))
            assert bool((raw[:8] < 2.0).all()) and bool((raw[30:] > 2.0).any())
    est = fishsym.diagonal_fisher(
        model, x, "categorical", exact=False, rel_error=0.2, generator=_gen(0)
    )
    assert "closed-form head" not in est.estimators.values()
    assert torch.isfinite(h).all()


# --------------------------------------------------------------------------- C9, C11
class _Temperature(nn.Module):
    """A learned temperature: a 0-d parameter."""

    def __init__(self):
        super().__init__()
        self.lin, self.t = nn.Linear(4, 3), nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return self.lin(x) / self.t


SUPPORTED = {
    "PReLU (one slope)": lambda: nn.Sequential(
        nn.Linear(4, 5), nn.PReLU(init=0.3), nn.Linear(5, 3)
    ),
    "PReLU (per channel)": lambda: nn.Sequential(
        nn.Linear(4, 5), nn.PReLU(5, init=0.3), nn.Linear(5, 3)
    ),
    "0-d parameter": _Temperature,
    "Linear per position": lambda: nn.Sequential(
        nn.Unflatten(1, (2, 2)), nn.Linear(2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6, 3)
    ),
}


@pytest.mark.parametrize("case", list(SUPPORTED))
def test_ordinary_models_are_supported(case):
    """C9/C11: these crashed with raw errors (or were refused by path="auto"); each now
    equals the brute-force oracle, on every route of diagonal_fisher too."""
    torch.manual_seed(0)
    model = SUPPORTED[case]().double()
    with torch.no_grad():  # a PReLU slope away from its kink's symmetric value
        for m in model.modules():
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(0.1, 0.5)
    truth = reference(model, X, "categorical")
    res = fishsym.fisher_variances(model, X, "categorical")
    for name in truth["fisher"]:
        for key in ("fisher", "var1", "var2"):
            torch.testing.assert_close(
                getattr(res, key)[name], truth[key][name].mean(0), rtol=RTOL, atol=1e-14
            )
    est = fishsym.diagonal_fisher(model, X, "categorical", generator=_gen(0))
    for name in truth["fisher"]:
        torch.testing.assert_close(
            est.value[name], truth["fisher"][name].mean(0), rtol=RTOL, atol=0
        )
    sampled = fishsym.diagonal_fisher(
        model, X, "categorical", exact=False, max_labels=4, generator=_gen(0)
    )
    assert set(sampled.value) == set(truth["fisher"])


def test_a_first_linear_per_position_falls_back_to_the_graph_path_under_auto_only():
    """Mutation audit (issue 23, variance/compute.py): a Sequential MLP whose first Linear
    runs per position (``[n, T, features]``) looks structured until it is prepared.
    ``path="auto"`` then takes the graph path, and equals the oracle; ``path="structured"``
    refuses it with the ShapeError that names the layer."""
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6, 3)).double()
    x = X.reshape(-1, 2, 2)
    truth = reference(model, x, "categorical")
    res = fishsym.fisher_variances(model, x, "categorical")
    assert res.path == "graph"
    for name in truth["fisher"]:
        for key in ("fisher", "var1", "var2"):
            torch.testing.assert_close(
                getattr(res, key)[name], truth[key][name].mean(0), rtol=RTOL, atol=1e-14
            )
    with pytest.raises(ShapeError, match="first Linear layer '0'"):
        fishsym.fisher_variances(model, x, "categorical", path="structured")


class _Recurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn, self.out = getattr(nn, kind)(2, 4, batch_first=True), nn.Linear(4, 3)

    def forward(self, x):
        seq, _ = self.rnn(x.reshape(x.shape[0], 2, 2))
        return self.out(seq[:, -1])


class _Squeeze(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x).unsqueeze(1).squeeze()


class _IndexPut(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.a = nn.Linear(4, 3), nn.Parameter(torch.tensor([0.5, 2.0]))

    def forward(self, x):
        h = self.lin(x)
        h[:, 0] = h[:, 0] * self.a[0] * self.a[1]
        return h


class _Random(nn.Module):
    def __init__(self, noise):
        super().__init__()
        self.lin, self.noise = nn.Linear(4, 3), noise

    def forward(self, x):
        h = self.lin(x)
        if self.noise:
            return h + torch.randn_like(h)
        return nn.functional.dropout(h, 0.5, training=True)


class _MaxNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.lin = nn.Embedding(10, 2, max_norm=0.5), nn.Linear(8, 3)

    def forward(self, x):
        return self.lin(self.emb((x.abs() * 3).long().clamp(max=9)).flatten(1))


REFUSED = {
    "Embedding max_norm": (_MaxNorm, UnsupportedModelError, "max_norm"),
    "RNN": (lambda: _Recurrent("RNN"), UnsupportedModelError, "RNNCell"),
    "GRU": (lambda: _Recurrent("GRU"), UnsupportedModelError, "GRUCell"),
    "LSTM": (lambda: _Recurrent("LSTM"), UnsupportedModelError, "LSTMCell"),
    "x.squeeze()": (_Squeeze, fishsym.errors.ShapeError, "squeeze"),
    "index-put": (_IndexPut, UnsupportedModelError, "out of place"),
    "functional dropout": (lambda: _Random(False), UnsupportedModelError, "random numbers"),
    "randn_like": (lambda: _Random(True), UnsupportedModelError, "random numbers"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_torch_func_cannot_do_is_refused_by_name(case, unchanged):
    """C9: raw RuntimeErrors (vmap randomness, in-place writes, fused RNN kernels, a
    dropped batch axis) become named errors saying what to change."""
    make, error, words = REFUSED[case]
    torch.manual_seed(0)
    model = make().double()
    before = unchanged.snapshot(model)
    for call in (
        lambda: fishsym.fisher_variances(model, X, "categorical"),
        lambda: fishsym.diagonal_fisher(
            model, X, "categorical", exact=False, max_labels=4, generator=_gen(0)
        ),
        lambda: estimate(model, X, "categorical", 2, 2, _gen(1)),
        lambda: fishsym.reference.exact_moments(model, X, "categorical"),
    ):
        with pytest.raises(error, match=words):
            call()
    unchanged.check(before, model)


# --------------------------------------------------------------------------- factor axes
class _Tokens(nn.Module):
    """Two tokens in, logits [n, 2, 3] out: an Embedding, tanh, a Linear per position."""

    def __init__(self):
        super().__init__()
        self.emb, self.out = nn.Embedding(3, 4), nn.Linear(4, 3)

    def forward(self, ids):
        return self.out(torch.tanh(self.emb(ids)))


IDS = torch.randint(0, 3, (6, 2), generator=_gen(5))


@pytest.mark.parametrize("family", ["categorical", "categorical_minimal", "multinomial"])
def test_factor_axes_are_never_read_as_one_distribution(family):
    """Issue 24: [n, 2, 3] logits were read as ONE distribution over 6 outputs, 46–50 %
    off the per-position Fisher, with no warning. Every entry point now reads one label
    per position (docs/theory.md §11): the Fisher is the sum over positions of each
    position's own Fisher."""
    torch.manual_seed(0)
    model = _Tokens().double()
    parts = [
        fishsym.fisher_variances(model, IDS, family, output=lambda o, t=t: o[:, t], bounds=False)
        for t in range(2)
    ]
    want = {n: parts[0].fisher[n] + parts[1].fisher[n] for n in parts[0].fisher}
    got = {
        "fisher_variances": fishsym.fisher_variances(model, IDS, family).fisher,
        "diagonal_fisher": fishsym.diagonal_fisher(model, IDS, family, generator=_gen(0)).value,
        "exact_moments": {
            n: v.mean(0)
            for n, v in fishsym.reference.exact_moments(model, IDS, family)["mean1"].items()
        },
    }
    for route, fisher in got.items():
        for n in want:
            torch.testing.assert_close(fisher[n], want[n], rtol=RTOL, atol=1e-15, msg=route)
    mc = estimate(model, IDS, family, 2, 2, _gen(1))
    assert mc.mean["squared_score"]["out.weight"].shape == (6, 3, 4)


def test_coordinatewise_families_read_factor_axes_exactly():
    """For a coordinate-wise family (independent Bernoulli) the flat reading IS the
    per-position product model: its Fisher and V₂ are the sums over positions, each
    position computed alone."""
    torch.manual_seed(0)
    model = _Tokens().double()
    whole = fishsym.fisher_variances(model, IDS, "independent_bernoulli")
    parts = [
        fishsym.fisher_variances(model, IDS, "independent_bernoulli", output=lambda o, t=t: o[:, t])
        for t in range(2)
    ]
    for name in whole.fisher:
        for key in ("fisher", "var2"):
            torch.testing.assert_close(
                getattr(whole, key)[name],
                sum(getattr(p, key)[name] for p in parts),
                rtol=RTOL,
                atol=1e-15,
            )


def test_the_private_copy_costs_no_memory_and_shares_no_writes():
    """The model view's copy of a CPU model in its own dtype is copy-on-write: no second
    copy of the parameters until one side writes (a language model's 600 MiB), and a write
    on either side stays on that side. A cast is an ordinary copy."""
    from fishsym.common import ModelView

    model = nn.Linear(4, 3).double()
    view = ModelView(model, torch.float64)
    t = view.params["weight"]
    is_cow = getattr(torch._C, "_is_cow_tensor", None)
    if is_cow is not None and hasattr(torch, "_lazy_clone"):
        assert is_cow(t)
        assert not is_cow(ModelView(model, torch.float32).params["weight"])
    before = t.clone()
    with torch.no_grad():
        model.weight.add_(1.0)  # the user's optimizer step, while the view lives
    assert torch.equal(t, before)
    t.mul_(0.0)  # a write on the view's side
    assert torch.equal(model.weight.detach(), before + 1.0)


class _Logger(nn.Module):
    """A forward that writes mutable attributes of its module (a list, a dict) and rebinds
    a plain one; one submodule used twice."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4).double()
        self.head = nn.Linear(4, 3).double()
        self.seen, self.stats, self.calls = [], {"n": 0}, 0

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        self.stats["n"] += 1
        self.calls += 1
        return self.head(torch.tanh(self.lin(torch.tanh(self.lin(x)))))


def test_the_private_module_copy_is_a_deep_copy(unchanged):
    """The view copies the module tree entry by entry (faster than ``copy.deepcopy``): the
    same classes, attributes and sharing as a deep copy, placeholders for the tensors, and
    a forward that writes its module's lists, dicts or plain attributes writes the copy's.
    A module with a copy protocol of its own (a parametrisation) is deep-copied."""
    import copy

    from fishsym.common import ModelView
    from fishsym.common.model import _plain_state

    model = _Logger()
    before = unchanged.snapshot(model)
    view = ModelView(model, torch.float64)
    deep = copy.deepcopy(model)
    for (name, mine), (_, theirs) in zip(
        view.module.named_modules(remove_duplicate=False),
        deep.named_modules(remove_duplicate=False),
        strict=True,
    ):
        assert type(mine) is type(theirs) and set(vars(mine)) == set(vars(theirs)), name
        assert all(p.device.type == "meta" for p in mine.parameters(recurse=False)), name
    assert view.module.seen is not model.seen and view.module.stats is not model.stats
    fishsym.fisher_variances(model, X, "categorical")
    assert model.seen == [] and model.stats == {"n": 0} and model.calls == 0
    unchanged.check(before, model)
    spectral = nn.utils.parametrizations.spectral_norm(nn.Linear(4, 3)).eval()
    assert not _plain_state(type(spectral))
    assert isinstance(ModelView(spectral).module, type(spectral))
