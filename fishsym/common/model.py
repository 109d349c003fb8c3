"""The functional view of a user's model, shared by every numeric entry point.

fishsym never modifies the user's model — not its parameters, buffers, flags, mode or
hooks. Every evaluation therefore runs on a **private copy** of the module tree whose
parameters and buffers are replaced, call by call, by cast copies
(``torch.func.functional_call``). The copy matters: ``functional_call`` on a model that
uses one module twice (tied weights) leaves that module's parameters behind as plain
tensors with ``requires_grad=False`` (PyTorch 2.13, with or without ``tie_weights``), so
calling it on the user's model would corrupt it. The copy shares nothing with the
original (its own tensors are shape-only ``meta`` placeholders, so it costs no memory).

The view also owns the checks every entry point needs before it can define
``I(θ|x)`` at all (docs/theory.md §1):

* the model is deterministic per input (no training-mode Dropout, BatchNorm, RReLU);
* its output is the natural parameter ``h`` ``[n_inputs, d]``: a tuple, dict or
  HuggingFace-style output needs an explicit ``output=`` selector, and an output taken
  straight from a final ``Softmax`` / ``LogSoftmax`` / ``Sigmoid`` / ``LogSigmoid`` /
  ``Softmin`` (probabilities, not natural parameters) is refused;
* it has trainable parameters, all finite;
* parameters used by more than one module (tied weights) are listed in
  :attr:`ModelView.shared` (``h`` is then not affine in them per use; the generic path
  handles them exactly, the structured path refuses them).
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from fishsym.common.inputs import all_finite
from fishsym.errors import (
    ArgumentTypeError,
    MemoryBudgetError,
    ModelWarning,
    NonFiniteError,
    ShapeError,
    UnsupportedModelError,
)

#: modules whose output is a probability (or log-probability), never a natural parameter
SQUASHING = (nn.Softmax, nn.LogSoftmax, nn.Sigmoid, nn.LogSigmoid, nn.Softmin, nn.Softmax2d)


# --------------------------------------------------------------------------- determinism
def is_identity_dropout(module: nn.Module) -> bool:
    """``True`` for a dropout module that currently passes its input through unchanged."""
    return isinstance(module, nn.modules.dropout._DropoutNd) and (
        not module.training or float(module.p) == 0.0
    )


def check_deterministic(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` naming the first module that makes the model's
    output random or batch-dependent (training-mode Dropout, BatchNorm, RReLU)."""
    for name, module in model.named_modules():
        where = name or type(model).__name__
        if isinstance(module, nn.modules.dropout._DropoutNd) and not is_identity_dropout(module):
            raise UnsupportedModelError(
                f"module {where!r} ({type(module).__name__}, p={module.p}) is in training mode: "
                "its output is random, so the Fisher information and the estimator variances "
                "are not defined per input. Call model.eval() first."
            )
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise UnsupportedModelError(
                f"module {where!r} ({type(module).__name__}) is in training mode: it normalises "
                "with batch statistics, which couples the inputs of a batch (and would update "
                "its running statistics). Call model.eval() first (it then uses its running "
                "statistics)."
            )
        if (
            isinstance(module, nn.modules.batchnorm._BatchNorm)
            and not module.training
            and (module.running_mean is None or module.running_var is None)
        ):
            raise UnsupportedModelError(
                f"module {where!r} ({type(module).__name__}, track_running_stats=False) "
                "normalises with the statistics of the batch even in evaluation mode: h of "
                "one input depends on the other inputs of its batch, so I(θ|x) is not "
                "defined per input. Use track_running_stats=True with running statistics "
                "(or a per-input normalisation such as LayerNorm / GroupNorm)."
            )
        if _spectral_norm_training(module):
            raise UnsupportedModelError(
                f"module {where!r} has spectral normalisation in training mode: every "
                "forward pass runs a power iteration that updates its buffers, so the "
                "output depends on how often the model was called. Call model.eval() first "
                "(the normalisation then uses its current estimate)."
            )
        if isinstance(module, nn.RReLU) and module.training:
            raise UnsupportedModelError(
                f"module {where!r} (RReLU) is in training mode: its negative slope is random. "
                "Call model.eval() first."
            )


def _spectral_norm_training(module: nn.Module) -> bool:
    """Spectral normalisation (the parametrization or the older hook) in training mode."""
    from torch.nn.utils.parametrizations import _SpectralNorm
    from torch.nn.utils.spectral_norm import SpectralNorm

    if isinstance(module, _SpectralNorm):
        return module.training
    hooks = list(module._forward_pre_hooks.values())
    return module.training and any(isinstance(h, SpectralNorm) for h in hooks)


# --------------------------------------------------------------------------- hooks
#: the per-module hook tables that run on a forward pass (and the kwargs flags beside them)
FORWARD_HOOKS = ("_forward_pre_hooks", "_forward_hooks")
#: every table of a module that holds forward hooks or their flags (what
#: :func:`_clear_hooks` empties for ``FORWARD_HOOKS``)
FORWARD_HOOK_TABLES = (
    *FORWARD_HOOKS,
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)
#: hook tables that never change ``h`` (backward hooks act on gradients, not on the
#: function ``h(θ)`` whose derivatives fishsym takes): always left out of the copy
OTHER_HOOKS = ("_backward_hooks", "_backward_pre_hooks")


def forward_hook_names(model: nn.Module) -> list[str]:
    """``"module: hook"`` for every forward (pre-)hook registered on the model's modules."""
    names = []
    for name, module in model.named_modules():
        for table in FORWARD_HOOKS:
            for hook in getattr(module, table).values():
                names.append(
                    f"{name or '(model)'}: {getattr(hook, '__name__', type(hook).__name__)}"
                )
    return names


def global_forward_hooks() -> int:
    """How many global module forward (pre-)hooks are registered; they run on every
    module, the private copy's too."""
    from torch.nn.modules import module as _module

    return len(_module._global_forward_hooks) + len(_module._global_forward_pre_hooks)


def _clear_hooks(module: nn.Module, tables) -> None:
    for m in module.modules():
        for table in tables:
            getattr(m, table).clear()
            kwargs = table.replace("hooks", "hooks_with_kwargs")
            if hasattr(m, kwargs):
                getattr(m, kwargs).clear()
        if "_forward_hooks" in tables and hasattr(m, "_forward_hooks_always_called"):
            m._forward_hooks_always_called.clear()
        if "_backward_hooks" in tables:
            m._is_full_backward_hook = None


def unregistered_tensors(model: nn.Module) -> list[str]:
    """Trainable tensors the model holds outside its module tree: ``nn.Parameter`` s or
    tensors with ``requires_grad`` in plain lists, tuples, dicts or sets of a module's
    attributes, or captured by a function attribute's closure. ``named_parameters`` does
    not see them, so fishsym treats them as constants."""
    registered = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    found: list[str] = []

    def visit(obj, where: str, depth: int) -> None:
        if depth > 3:
            return
        if isinstance(obj, Tensor):
            # a leaf: a tensor computed from registered parameters (the weight that
            # weight_norm's hook recomputes) is not held outside
            if obj.requires_grad and obj.is_leaf and id(obj) not in registered:
                found.append(where)
        elif isinstance(obj, (list, tuple, set)):
            for i, item in enumerate(obj):
                visit(item, f"{where}[{i}]", depth + 1)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                visit(item, f"{where}[{key!r}]", depth + 1)
        elif callable(obj) and getattr(obj, "__closure__", None):
            for cell, var in zip(obj.__closure__, obj.__code__.co_freevars, strict=False):
                try:
                    visit(cell.cell_contents, f"{where} (closure variable {var!r})", depth + 1)
                except ValueError:  # an empty cell
                    continue

    internal = set(vars(nn.Module()))  # the module's own tables (_parameters, _buffers, …)
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr in internal or isinstance(value, nn.Module):
                continue
            visit(value, f"{name + '.' if name else ''}{attr}", 0)
    return found


# --------------------------------------------------------------------------- torch.func's limits
def check_transformable(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` for modules that torch.func's per-input
    transforms cannot evaluate (fused recurrent kernels, an embedding that renormalises
    its weight in place)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and module.max_norm is not None:
            raise UnsupportedModelError(
                f"module {name or '(model)'!r} (nn.Embedding with max_norm={module.max_norm}) "
                "renormalises the rows it looks up in place, inside forward: the function "
                "changes its own parameters as it is evaluated, so its per-input derivatives "
                "(and the Fisher information) are not those of one fixed function. Apply the "
                "norm constraint outside forward (after each optimizer step, under "
                "torch.no_grad), or clip the looked-up rows out of place (a product with "
                "min(1, max_norm/‖row‖)), and pass max_norm=None"
            )
        if isinstance(module, nn.RNNBase):
            raise UnsupportedModelError(
                f"module {name or '(model)'!r} ({type(module).__name__}) runs its recurrence "
                "as one fused kernel, which torch.func cannot vectorise per input (the "
                "derivatives of every fishsym path are per input). Write the recurrence "
                f"with nn.{type(module).__name__}Cell in a loop over the time steps (same "
                "parameters, same function), or select the parameters after it."
            )


def _prelu_forward(self, x: Tensor) -> Tensor:
    # PReLU written with where: torch's batching rule for the prelu kernel's backward is
    # wrong under vmap(jacrev) (PyTorch 2.13); same function, channels on axis 1
    w = self.weight
    if w.numel() > 1 and x.dim() >= 2:
        w = w.reshape(-1, *([1] * (x.dim() - 2)))
    return torch.where(x >= 0, x, w * x)


#: raw errors of the transforms over a user's forward, and what they mean for the user
_TRANSFORM_ERRORS = (
    (
        ("randomness error mode", "random operation"),
        "the model draws random numbers in forward (functional dropout with training=True, "
        "torch.randn_like noise, ...): its output is random, so the Fisher information is "
        "not defined per input. Make forward deterministic in evaluation "
        "(F.dropout(h, p, training=self.training), noise only when self.training) and "
        "call model.eval()",
    ),
    (
        ("modified by an inplace operation",),
        "the model writes in place into a tensor that the derivatives need (h[:, 0] = ..., "
        "x.mul_(...) on a value used again). Write that step out of place (torch.cat, "
        "torch.where, x = x * ...)",
    ),
)


def translate_model_errors(fn):
    """Decorate an entry point so that the raw errors torch.func raises on what a model
    does in forward become :class:`UnsupportedModelError` s saying what to change."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as err:
            text = str(err)
            for patterns, advice in _TRANSFORM_ERRORS:
                if any(p in text for p in patterns):
                    raise UnsupportedModelError(
                        f"{advice}. (torch said: {text.splitlines()[0][:200]})"
                    ) from err
            raise

    return wrapper


def shared_parameters(model: nn.Module) -> dict[str, list[str]]:
    """Parameters reachable under more than one name (tied weights, a module used
    twice): ``{first name: [every name]}``."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return {aliases[0]: aliases for aliases in names.values() if len(aliases) > 1}


def private_copy(t: Tensor, device, dtype: torch.dtype) -> Tensor:
    """A copy of the user's tensor ``t`` in ``device`` and ``dtype`` that shares nothing
    writable with it. Where no cast is needed (a CPU tensor in the working dtype) the copy
    is *copy-on-write* (``torch._lazy_clone``): it costs no memory until one side writes,
    and a write on either side — a forward that writes its weights in place (an
    ``nn.Embedding`` with ``max_norm``), or the user's next optimizer step — then gives
    the writer its own storage, so neither ever sees the other's writes. A language
    model's parameters are then not held twice. Elsewhere (a cast, another device, a
    torch without the copy-on-write clone) an ordinary copy."""
    t = t.detach()
    lazy = getattr(torch, "_lazy_clone", None)
    if (
        lazy is not None
        and t.device.type == "cpu"
        and t.device == torch.device(device)
        and (t.dtype == dtype)
    ):
        return lazy(t)
    return t.to(device=device, dtype=dtype, copy=True)


def _private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the module tree whose parameters and buffers are shape-only
    ``meta`` placeholders (every call replaces them), sharing preserved."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    try:
        if all(_plain_state(type(m)) for m in model.modules()):
            return _copy_tree(model, memo)
        return copy.deepcopy(model, memo)
    except Exception as err:  # noqa: BLE001 — any failure of the user's __deepcopy__
        raise UnsupportedModelError(
            f"fishsym evaluates a private copy of the model so that the original is never "
            f"modified, but copy.deepcopy({type(model).__name__}) failed: {err}"
        ) from err


#: how a module's state is taken for a copy, as ``nn.Module`` does it (any other:
#: ``copy.deepcopy``); ``__setstate__``, which receives it, is called as deepcopy calls it
_COPY_PROTOCOL = ("__deepcopy__", "__copy__", "__reduce_ex__", "__reduce__", "__getstate__")


def _plain_state(cls: type) -> bool:
    """Whether the module class gives up its state as ``nn.Module`` does (no copy protocol
    of its own: a parametrised module's generated class has one)."""
    return all(getattr(cls, a, None) is getattr(nn.Module, a, None) for a in _COPY_PROTOCOL)


def _copy_tree(model: nn.Module, memo: dict[int, object]) -> nn.Module:
    """What ``copy.deepcopy(model, memo)`` gives for modules with the plain state of
    :func:`_plain_state`, a few times faster: each module's ``__dict__`` copied entry by
    entry, the tables of parameters, buffers and submodules pointed at their copies in
    ``memo``, empty tables (the hook tables, mostly) made new instead of deep-copied, and
    handed to the copy's ``__setstate__`` as deepcopy hands them (torch's own fill in
    attributes that old checkpoints lack: a convolution's ``padding_mode``)."""
    modules = list(model.modules())
    for m in modules:
        memo[id(m)] = m.__class__.__new__(m.__class__)
    tables = ("_parameters", "_buffers", "_modules")
    for m in modules:
        state = {}
        for key, value in m.__dict__.items():
            if key in tables:
                state[key] = type(value)(
                    (k, None if v is None else memo[id(v)]) for k, v in value.items()
                )
            elif type(value) in (dict, OrderedDict, set) and not value:
                state[key] = type(value)()
            else:
                state[key] = copy.deepcopy(value, memo)
        memo[id(m)].__setstate__(state)
    return memo[id(model)]


# --------------------------------------------------------------------------- the head
@dataclass
class LinearHead:
    """A final ``nn.Linear`` whose output is ``h`` itself: ``h = W z + b`` with ``z`` the
    layer input (:meth:`ModelView.linear_head`). For its entries ``u = e_a z_b`` (bias:
    ``e_a``), so ``I(W[a, b]|x) = I(h)_aa z_b²`` in closed form (docs/theory.md §7). Applied
    at every position of an output with factor axes (tokens, §11), ``h_t = W z_t + b``, it
    gives ``I(W[a, b]|x) = Σ_t I(h_t)_aa z_{t,b}²``.

    Attributes
    ----------
    module:
        The module's qualified name.
    weight, bias:
        The trainable parameter names (``None`` for a frozen or absent one).
    h:
        ``[n, T·d]``, the outputs of the inputs checked (flattened over factor axes).
    z:
        ``[n, in]``, the head's input for each input, or ``[n, T, in]`` at each of the
        ``T`` positions of an output ``[n, *factors, d]``.
    mask:
        ``[n, T]``, 1 where a position counts and 0 where it is padding (``None``: every
        position counts).
    """

    module: str
    weight: str | None
    bias: str | None
    h: Tensor
    z: Tensor
    mask: Tensor | None = None

    @property
    def names(self) -> list[str]:
        """The trainable parameter names of the head."""
        return [n for n in (self.weight, self.bias) if n is not None]


#: inputs per forward-mode pass with which :meth:`ModelView.linear_head` confirms
#: ``∂h = V z + β`` on every input
HEAD_CHECK_CHUNK = 256
#: tolerance of that check, in units of the float eps times the size of the terms
HEAD_CHECK_ULPS = 1024


# --------------------------------------------------------------------------- the view
class ModelView:
    """``h(x; θ)`` of a user's model, evaluated on a private copy with cast parameters.

    Parameters
    ----------
    model:
        The user's ``nn.Module``; read, never modified.
    dtype:
        Working dtype: floating parameters and buffers are cast copies in it.
    output:
        Optional selector applied to the model's raw output (``lambda out: out.logits``,
        ``lambda out: out[0]``); its result must be the natural parameter tensor.
    device:
        Where to compute (default: the device of the model's first parameter).
    mask_layout:
        Inputs packed with a padding mask (:func:`fishsym.common.mask.pack_mask`): each
        batch is split into inputs and mask, and the masked positions of the output are
        absent factors (docs/theory.md §11).

    Attributes
    ----------
    params:
        ``{name: tensor}`` of the trainable parameters (``requires_grad=True``), in model
        order, one name per tensor (the first, for tied weights).
    constants:
        Frozen parameters and buffers.
    frozen:
        Names of the frozen parameters.
    shared:
        ``{name: aliases}`` of trainable parameters used under several names.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype = torch.float64,
        output: Callable | None = None,
        device=None,
        mask_layout=None,
    ):
        if not isinstance(model, nn.Module):
            raise ArgumentTypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if output is not None and not callable(output):
            raise ArgumentTypeError(
                "output must be None or a callable selecting the natural parameters from the "
                f"model's output (e.g. lambda out: out.logits); got {output!r}"
            )
        check_deterministic(model)
        check_transformable(model)
        self.model = model
        self.dtype = dtype
        self.output = output
        self.mask_layout = mask_layout
        first = next(iter(model.parameters()), None)
        self.device = (
            torch.device(device)
            if device is not None
            else (first.device if first is not None else torch.device("cpu"))
        )
        self.params: dict[str, Tensor] = {}
        self.constants: dict[str, Tensor] = {}
        self.frozen: list[str] = []
        for name, p in model.named_parameters():
            if not all_finite(p.detach()):
                raise NonFiniteError(
                    f"parameter {name!r} of the model contains NaN or inf; every parameter "
                    "must be finite"
                )
            # a copy, never the user's storage: a forward that writes in place must not
            # reach the user's tensors
            t = private_copy(p, self.device, dtype)
            if p.requires_grad:
                self.params[name] = t
            else:
                self.constants[name] = t
                self.frozen.append(name)
        for name, b in model.named_buffers():
            if b.is_floating_point() and not all_finite(b):
                raise NonFiniteError(f"buffer {name!r} of the model contains NaN or inf")
            kind = dtype if b.is_floating_point() else b.dtype
            self.constants[name] = private_copy(b, self.device, kind)
        if not self.params:
            raise UnsupportedModelError(
                "the model has no trainable parameters (every parameter has "
                "requires_grad=False); fishsym computes the Fisher information of the "
                "trainable ones — call p.requires_grad_(True) on those you want"
            )
        self.shared = {k: v for k, v in shared_parameters(model).items() if k in self.params}
        outside = unregistered_tensors(model)
        if outside:
            warnings.warn(
                "the model holds trainable tensors outside its module tree "
                f"({', '.join(outside)}): "
                "named_parameters() does not list them, so fishsym treats them as constants "
                "(no Fisher information is computed for them). Register them "
                "(nn.Parameter attributes, nn.ParameterList / nn.ParameterDict) to include them.",
                ModelWarning,
                stacklevel=3,
            )
        self.module = _private_copy(model)
        _clear_hooks(self.module, OTHER_HOOKS)
        for m in self.module.modules():
            if isinstance(m, nn.PReLU):
                m.forward = _prelu_forward.__get__(m)
        #: forward hooks on the model, and whether they change what it computes (decided
        #: on the first inputs by :meth:`probe`: ``None`` until then, or without hooks)
        self.hooks = forward_hook_names(model)
        self.hooks_change_output: bool | None = None if self.hooks else False

    # ------------------------------------------------------------------ evaluation
    def raw(self, params: Mapping[str, Tensor] | None, x: Tensor, apply_mask: bool = True):
        """The (selected) output of the copy for a batch ``x``, with ``params`` replacing
        some trainable parameters (and the masked positions detached, unless
        ``apply_mask`` is false)."""
        tensors = {**self.constants, **self.params, **(params or {})}
        mask = None
        if self.mask_layout is not None:
            x, mask = self.mask_layout.split(x)
        out = functional_call(self.module, tensors, (x,))
        out = self.output(out) if self.output is not None else out
        if mask is not None and apply_mask and isinstance(out, Tensor):
            out = self.mask_layout.apply(out, mask)
        return out

    def split_mask(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The inputs and the padding mask ``[n, *factors]`` (``None`` without a mask) of a
        batch."""
        if self.mask_layout is None:
            return x, None
        return self.mask_layout.split(x)

    def __call__(self, params: Mapping[str, Tensor] | None, x: Tensor) -> Tensor:
        """``h`` ``[n, d]`` for a batch (:meth:`batch`)."""
        return self.batch(params, x)

    def batch(self, params: Mapping[str, Tensor] | None, x: Tensor) -> Tensor:
        """``h`` ``[n, d]`` for a batch ``x`` ``[n, ...]`` (differentiable; for ``torch.func``)."""
        h = self.raw(params, x)
        if not isinstance(h, Tensor):
            raise self._not_a_tensor(h)
        if h.dim() == 0 or h.shape[0] != x.shape[0]:
            raise ShapeError(
                f"for a batch of {x.shape[0]} input(s) the model returned shape "
                f"{tuple(h.shape)}: its leading axis must be the input axis for every batch "
                "size, one included (fishsym evaluates single inputs as batches of one). A "
                "forward that calls .squeeze() drops that axis for one input: name the axis, "
                ".squeeze(-1)"
            )
        return h.reshape(h.shape[0], -1) if h.dim() > 1 else h.reshape(-1, 1)

    def single(self, params: Mapping[str, Tensor] | None, x: Tensor) -> Tensor:
        """``h`` ``[d]`` for ONE input ``x`` (no batch axis), as ``torch.func`` transforms
        vectorised over inputs need."""
        return self.batch(params, x.unsqueeze(0))[0]

    def outputs(self, x: Tensor) -> Tensor:
        """``h`` ``[n, d]`` for a batch, without gradients."""
        with torch.no_grad():
            return self.batch(None, x)

    def _not_a_tensor(self, out) -> UnsupportedModelError:
        kind = type(out).__name__
        if isinstance(out, Mapping) or hasattr(out, "keys"):
            keys = list(out.keys())[:4]
            hint = f"output=lambda out: out[{keys[0]!r}]" if keys else "output=..."
            return UnsupportedModelError(
                f"the model returned a {kind} (keys {keys}), not the natural-parameter tensor; "
                f"pass an output selector, e.g. {hint}"
            )
        if isinstance(out, (tuple, list)):
            return UnsupportedModelError(
                f"the model returned a {kind} of {len(out)} items, not the natural-parameter "
                "tensor; pass an output selector, e.g. output=lambda out: out[0]"
            )
        return UnsupportedModelError(
            f"the model (after the output selector) returned a {kind}, not a tensor of natural "
            "parameters [n_inputs, d]"
        )

    # ------------------------------------------------------------------ the head
    def linear_head(self, x: Tensor) -> LinearHead | None:
        """The final ``nn.Linear`` of the model when ``h = W z + b`` can be proved, with
        ``h`` and ``z`` for every input of ``x``; ``None`` otherwise.

        Proved, not assumed: the model's (selected) output tensor *is* the output of one
        ``nn.Linear`` of the private copy, ``[n, d]`` or, applied at every position of an
        output with factor axes, ``[n, *factors, d]`` (§11); that module ran once per
        forward pass; none of its trainable parameters is shared with another module;
        and a forward-mode derivative along a random direction ``(V, β)`` of its
        parameters equals ``V z + β`` on **every** input of ``x`` — which fails if the
        parameters also enter ``h`` another way (a weight tied by functional code) or an
        in-place operation changes the logits (a cap), for any of them.
        """
        calls: dict[int, list] = {}

        def record(module, args, out):
            calls.setdefault(id(module), []).append((args[0] if args else None, out))

        linears = [(n, m) for n, m in self.module.named_modules() if isinstance(m, nn.Linear)]
        handles = [m.register_forward_hook(record) for _, m in linears]
        try:
            with torch.no_grad(), math_attention():
                raw = self.raw(None, x, apply_mask=False)
        finally:
            for handle in handles:
                handle.remove()
        mask = self.split_mask(x)[1]
        if not isinstance(raw, Tensor) or raw.dim() < 2:
            return None
        found = [
            (name, module)
            for name, module in linears
            if len(calls.get(id(module), ())) == 1 and calls[id(module)][0][1] is raw
        ]
        if len(found) != 1:
            return None
        name, module = found[0]
        z = calls[id(module)][0][0]
        if not isinstance(z, Tensor) or z.shape[:-1] != raw.shape[:-1]:
            return None
        n = raw.shape[0]
        z = z.reshape(n, -1, z.shape[-1]) if raw.dim() > 2 else z
        prefix = f"{name}." if name else ""
        aliases = {a for names in self.shared.values() for a in names}
        names = {}
        for kind in ("weight", "bias"):
            full = prefix + kind
            if getattr(module, kind, None) is None or full not in self.params:
                names[kind] = None
            elif full in aliases:
                return None  # tied: h is not W z + b in it alone
            else:
                names[kind] = full
        if names["weight"] is None and names["bias"] is None:
            return None
        # on every input the head is used for: the weight may enter h another way, or an
        # in-place cap may clip the logits, for some inputs only
        if mask is not None:
            mask = mask.reshape(n, -1).to(z.dtype)  # [n, T]: 0 at an absent position
            if z.dim() != 3 or mask.shape[1] != z.shape[1]:
                return None
        for start in range(0, x.shape[0], HEAD_CHECK_CHUNK):
            rows = slice(start, start + HEAD_CHECK_CHUNK)
            weight = None if mask is None else mask[rows]
            if not self._head_is_affine(x[rows], names, z[rows], weight):
                return None
        return LinearHead(name, names["weight"], names["bias"], raw.reshape(n, -1), z, mask)

    def _head_is_affine(self, x: Tensor, names: dict, z: Tensor, mask=None) -> bool:
        """``∂h[(V, β)] = V z + β`` along one random direction (forward mode), at every
        position when ``z`` is ``[n, T, in]``."""
        from torch.func import jvp

        gen = torch.Generator(device=self.device).manual_seed(0)
        wanted = {n: self.params[n] for n in names.values() if n is not None}
        tangents = {
            n: torch.randn(p.shape, generator=gen, dtype=p.dtype, device=p.device)
            for n, p in wanted.items()
        }
        try:
            with torch.no_grad(), math_attention():
                _, dh = jvp(lambda ps: self.batch(ps, x), (wanted,), (tangents,))
        except (RuntimeError, NotImplementedError, TypeError):
            return False  # no forward-mode rule somewhere: not proved
        dh = dh.reshape(*z.shape[:-1], -1)  # [n, (T,) d]
        expected = torch.zeros_like(dh)
        size = torch.zeros_like(dh)
        if names["weight"] is not None:
            v = tangents[names["weight"]]
            expected = expected + z @ v.T
            size = size + z.abs() @ v.abs().T
        if names["bias"] is not None:
            beta = tangents[names["bias"]]
            expected = expected + beta
            size = size + beta.abs()
        if mask is not None:  # an absent position has no derivative
            expected = expected * mask[..., None]
        tol = HEAD_CHECK_ULPS * torch.finfo(dh.dtype).eps * (size + size.max() * 1e-3)
        return bool(((dh - expected).abs() <= tol).all())

    def _check_deterministic(self, x: Tensor, first: Tensor) -> None:
        """Refuse a forward that draws random numbers (functional dropout in training,
        ``randn_like`` noise): evaluated twice on the same inputs it differs. (Inside
        ``torch.func`` transforms such a forward fails with a randomness error; a batched
        pass, like the layer rules of :mod:`fishsym.engine.sumsq`, would not notice.)"""
        if not isinstance(first, Tensor) or not first.is_floating_point():
            return
        with torch.no_grad():
            again = self.raw(None, x)
        if not isinstance(again, Tensor) or again.shape != first.shape:
            return
        scale = float(first.abs().max()) if first.numel() else 0.0
        if float((again - first).abs().max()) > RANDOM_FORWARD_RTOL * scale:
            raise UnsupportedModelError(_TRANSFORM_ERRORS[0][1])

    def cast(self, dtype: torch.dtype) -> ModelView:
        """The same model viewed in another working ``dtype``, with what :meth:`probe`
        decided about its hooks (hooks that do not change the output stay left out)."""
        if dtype == self.dtype:
            return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelWarning)  # said once, by this view
            other = ModelView(
                self.model,
                dtype,
                output=self.output,
                device=self.device,
                mask_layout=self.mask_layout,
            )
        if self.hooks_change_output is False:
            _clear_hooks(other.module, FORWARD_HOOKS)
        other.hooks_change_output = self.hooks_change_output
        return other

    # ------------------------------------------------------------------ hooks
    def _settle_hooks(self, x: Tensor, with_hooks: Tensor) -> None:
        """Decide whether the model's forward hooks change its output on the inputs ``x``
        (``with_hooks`` is the output computed with them). Hooks that do not — recording
        hooks — are left out of every later evaluation, so they run once, here, and never
        on the intermediate tensors of fishsym's transforms. Hooks that do are part of the
        model: they stay (every engine but the structured path evaluates them; the
        structured path is refused) and run on each internal evaluation."""
        stash = [
            (m, table, dict(getattr(m, table)))
            for m in self.module.modules()
            for table in FORWARD_HOOK_TABLES
            if hasattr(m, table)
        ]
        _clear_hooks(self.module, FORWARD_HOOKS)
        try:
            with torch.no_grad():
                without = self.raw(None, x)
        except Exception:  # noqa: BLE001 — the model needs its hooks to run at all
            without = None
        same = (
            isinstance(without, Tensor)
            and without.shape == with_hooks.shape
            and bool(torch.equal(without, with_hooks))
        )
        if same:
            self.hooks_change_output = False
            warnings.warn(
                f"the model's forward hooks ({'; '.join(self.hooks)}) do not change its "
                f"output on the first {x.shape[0]} inputs: they ran once there and are left "
                "out of fishsym's evaluations (your model keeps them)",
                ModelWarning,
                stacklevel=4,
            )
            return
        for m, table, saved in stash:
            getattr(m, table).update(saved)
        self.hooks_change_output = True

    # ------------------------------------------------------------------ checks
    def probe(self, x: Tensor) -> int:
        """Check the output on the first inputs of ``x`` and return ``d``.

        Raises :class:`UnsupportedModelError` when the output is not a tensor or comes
        straight from a squashing module (probabilities instead of natural parameters),
        and :class:`ShapeError` when its leading axis is not the input axis.
        """
        # with hooks, enough inputs to see whether they change the output (they run once
        # here, on these inputs; see :meth:`_settle_hooks`)
        x1 = x[:HOOK_CHECK_INPUTS] if self.hooks_change_output is None else x[:2]
        seen: list[tuple[nn.Module, object]] = []

        def record(module, args, out):
            if isinstance(module, SQUASHING):
                seen.append((module, out))

        versions = {n: t._version for n, t in self.constants.items()}
        handles = [m.register_forward_hook(record) for m in self.module.modules()]
        try:
            with torch.no_grad():
                raw = self.raw(None, x1)
        except (RuntimeError, TypeError, IndexError, ValueError) as err:
            one_d = (
                " A 1-D tensor is read as a batch of scalar inputs; for one input of shape "
                f"{tuple(x.shape)} pass x.unsqueeze(0)."
                if x.dim() == 1
                else ""
            )
            raise ShapeError(
                f"the model failed on inputs of shape {tuple(x1.shape)} (the first inputs "
                f"of {tuple(x.shape)}; dtype {x.dtype}): {type(err).__name__}: {err}. "
                f"inputs must be [n_inputs, *input_shape].{one_d}"
            ) from err
        finally:
            for handle in handles:
                handle.remove()
        written = [n for n, t in self.constants.items() if t._version != versions[n]]
        if written:
            raise UnsupportedModelError(
                f"the model writes its buffer(s) {written} in place during forward (a call "
                "counter, a running average): its output may then depend on how often it "
                "was called, and the derivatives fishsym takes cannot pass through the "
                "write. fishsym never changes your model; make the update conditional "
                "(e.g. only when self.training, then call model.eval()) or keep the state "
                "outside the module."
            )
        if not isinstance(raw, Tensor):
            raise self._not_a_tensor(raw)
        if self.hooks_change_output is None:
            self._settle_hooks(x1, raw)
        self._check_deterministic(x1[:2], raw[:2])
        squash = next((m for m, out in seen if out is raw), None)
        if squash is not None:
            name = next((n for n, m in self.module.named_modules() if m is squash), "?")
            raise UnsupportedModelError(
                f"the model's output comes straight from module {name!r} "
                f"({type(squash).__name__}): probabilities, not the natural parameters h of "
                "an exponential family. Pass the logits instead (drop the final "
                f"{type(squash).__name__}, e.g. model[:-1] for an nn.Sequential); fishsym's "
                'families apply the link themselves ("categorical" takes logits, '
                '"bernoulli" / "independent_bernoulli" take log-odds)'
            )
        if raw.dim() == 0 or raw.shape[0] != x1.shape[0]:
            raise ShapeError(
                f"for inputs of shape {tuple(x1.shape)} the model returned shape "
                f"{tuple(raw.shape)}: its leading axis must be the input axis [n_inputs, d]. "
                "Inputs need a leading batch axis (for one input use x.unsqueeze(0))"
            )
        #: the output's shape without the batch axis (its factor axes, if any, and d)
        self.out_shape = tuple(raw.shape[1:]) or (1,)
        return int(raw[0].numel())


#: inputs on which :meth:`ModelView.probe` compares the output with and without hooks
HOOK_CHECK_INPUTS = 64
#: two forward passes of the same inputs may differ by this much relative to the output's
#: size before the forward counts as random (non-deterministic GPU reductions differ by
#: rounding; dropout or injected noise by the size of the activations)
RANDOM_FORWARD_RTOL = 1e-4


@contextlib.contextmanager
def math_attention():
    """A context selecting the math backend of ``scaled_dot_product_attention`` and turning
    off the fused fast path of ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer``
    (restored on exit): the fused CPU/GPU kernels lack double-backward, forward-mode and
    batching rules that the derivatives need, and hide the operations from a trace."""
    with contextlib.ExitStack() as stack:
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
        except ImportError:  # pragma: no cover - older torch
            pass
        else:
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        mha = getattr(torch.backends, "mha", None)
        if mha is not None and hasattr(mha, "set_fastpath_enabled"):
            before = mha.get_fastpath_enabled()
            mha.set_fastpath_enabled(False)
            stack.callback(mha.set_fastpath_enabled, before)
        yield


# --------------------------------------------------------------------------- memory
#: default share of the machine's memory one request may plan to use
MEMORY_SHARE = 0.5


def memory_budget(max_memory: float | None = None, device=None) -> int:
    """Bytes a request may allocate: ``max_memory`` when given, else
    :data:`MEMORY_SHARE` of the free memory of a CUDA ``device`` or of the physical
    memory of this machine."""
    if max_memory is not None:
        if (
            isinstance(max_memory, bool)
            or not isinstance(max_memory, (int, float))
            or not (max_memory > 0)
        ):
            raise ArgumentTypeError(
                f"max_memory must be a positive number of bytes or None; got {max_memory!r}"
            )
        return int(max_memory)
    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(MEMORY_SHARE * free)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(MEMORY_SHARE * total)


def check_memory(needed: float, budget: int, what: str, advice: str) -> None:
    """Raise :class:`MemoryBudgetError` before allocating ``needed`` bytes over ``budget``."""
    if needed > budget:
        raise MemoryBudgetError(
            f"{what} needs about {_bytes(needed)}, over the memory budget of {_bytes(budget)} "
            f"(max_memory; default {MEMORY_SHARE:.0%} of this machine's memory). {advice}"
        )


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


__all__ = [
    "LinearHead",
    "ModelView",
    "SQUASHING",
    "check_deterministic",
    "check_memory",
    "check_transformable",
    "translate_model_errors",
    "is_identity_dropout",
    "math_attention",
    "memory_budget",
    "shared_parameters",
]
