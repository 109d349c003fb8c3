"""Sums of squared per-input gradients, layer by layer (docs/theory.md §12).

Every sampled estimator of ``diagonal_fisher`` reduces to one primitive: for each input
``n`` a scalar ``ψ_n = c_nᵀ h_n`` (``c_n`` a cotangent of the output: ``t(y_n) − η_n`` for
a sampled label, ``R̄ξ_n`` for a probe), and per parameter entry ``Σ_n (∂_i ψ_n)²``.

**How (the choice, measured in ``benchmarks/bench_scale.py``).** One forward pass of the
batch with forward hooks on the layers (recording each layer's input ``z``), and **one**
backward pass of ``Σ_n ψ_n`` to every layer's output (``δ``): the inputs of a batch do not
interact (the model view refuses batch statistics), so ``δ_n`` is input ``n``'s own. Then
per layer, with nothing per input stored beyond one layer's gradients for a chunk of
inputs:

* ``nn.Linear`` on one position: ``Σ_n δ_{na}² z_{nb}² = ((δ∘δ)ᵀ(z∘z))_ab``, one GEMM;
* ``nn.Linear`` over positions ``[n, *T, in]``, ``nn.Conv1d``/``nn.Conv2d`` (positions =
  output pixels, ``z`` unfolded): ``g_n = Σ_t δ_{nt} z_{nt}ᵀ``, one batched GEMM per chunk
  of inputs, squared and summed (the cross-position terms have no shortcut);
* ``nn.Embedding``: ``δ_t`` summed into the rows of the tokens each input used, squared;
* the affine weights of ``nn.LayerNorm``, ``nn.GroupNorm`` and evaluation-mode
  ``nn.BatchNorm1d/2d``: ``Σ_t δ_t ∘ x̂_t`` (weight), ``Σ_t δ_t`` (bias);
* a layer fed a tensor without the batch axis (a position embedding of ``arange(T)``):
  its output expanded to the batch in the hooked pass (``δ`` per input), where that
  leaves ``h`` unchanged;
* every other parameter (raw parameters, other layers, weights tied or used outside
  their module): a chunked ``vmap(grad)`` of ``ψ_n`` over those parameters alone.

Module hooks were chosen over the alternatives weighed in issue 24: ``torch.func`` per
layer needs the layer's inputs anyway (a second forward pass); torch's expanded-weights
per-sample gradients form every per-input gradient of every layer (``n × P`` numbers, what
§12 avoids) and support few layers; Opacus' ``GradSampleModule`` does the same per layer
but adds a dependency with its own model surgery. The hooks are put on fishsym's private
copy of the model only.

**Checked on every input.** On the first call with given inputs the backward pass also
gives ``Σ_n ∂ψ_n/∂θ`` for every parameter; a layer's rule is kept only where the sum of
its per-input gradients equals that on every chunk of inputs (a parameter also used
outside its layer shows there). A layer that fails is recomputed by ``vmap(grad)``, and
stays on it. Later calls with the same inputs (the rounds of ``diagonal_fisher``, which
differ only in the cotangents: labels and probes do not change which operations run)
skip the check and its extra products. Layers of a model whose forward hooks
change its output, and parameters shared by several modules, take ``vmap(grad)`` from
the start.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

#: inputs per chunk of the per-input gradients of one layer (and of the vmap fallback)
INPUT_CHUNK = 64
#: the proof compares Σ_n g_n with the batch gradient to this many ulps of the sum of
#: absolute per-input gradients (rounding of two summation orders)
PROOF_ULPS = 64

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, *_NORMS)


def _rule_applies(module: nn.Module) -> bool:
    """Whether a layer's per-input gradients follow from its input and ``δ`` (a layer of
    exactly a supported type, with no option that changes the rule)."""
    if type(module) not in _SUPPORTED:
        return False
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
    if isinstance(module, nn.Embedding):
        return module.max_norm is None and not module.scale_grad_by_freq
    if isinstance(module, nn.LayerNorm):
        return module.elementwise_affine
    if isinstance(module, nn.GroupNorm):
        return module.affine
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return module.affine and not module.training and module.track_running_stats
    return True


def ruled_layers(view, names) -> tuple[dict[str, nn.Module], dict[str, dict[str, str]]]:
    """The layers of ``view``'s private copy with a rule (:func:`_rule_applies`) that own
    some of the parameters ``names``: ``{module name: module}`` and ``{module name: {attr:
    parameter name}}``. None while forward hooks change the output (no rule sees them),
    and none for a layer with a parameter shared with another module (tied weights)."""
    wanted = set(names)
    shared = {a for aliases in view.shared.values() for a in aliases} | set(view.shared)
    layers: dict[str, nn.Module] = {}
    owned: dict[str, dict[str, str]] = {}
    if view.hooks_change_output is not False:
        return layers, owned
    for mname, module in view.module.named_modules():
        if not _rule_applies(module):
            continue
        prefix = f"{mname}." if mname else ""
        own = {
            attr: prefix + attr
            for attr in ("weight", "bias")
            if getattr(module, attr, None) is not None and prefix + attr in wanted
        }
        if own and not any(name in shared for name in own.values()):
            layers[mname] = module
            owned[mname] = own
    return layers, owned


class SquaredGradientSums:
    """``Σ_n (∂_i ψ_n)²`` with ``ψ_n = c_nᵀ h_n``, for the parameters ``names`` of a
    :class:`~fishsym.common.ModelView` (module docstring).

    ``sums(x, cot)`` takes inputs ``x`` ``[n, ...]`` and cotangents ``cot`` ``[n, d]`` (one
    per input, ``d`` the flattened output) and returns ``{name: tensor}`` shaped like the
    parameters. :attr:`routes` says per parameter ``"layer rule"`` or ``"vmap(grad)"``.
    """

    def __init__(self, view, names=None):
        self.view = view
        self.names = list(view.params) if names is None else list(names)
        # module name → module of the private copy, and → {attr: parameter name}
        self.layers, self.owned = ruled_layers(view, self.names)
        self._aligned = False
        self.broadcast: set[str] = set()  # layers whose output is expanded to the batch
        self._proved_on = None  # the inputs on which every layer rule was checked
        covered = {name for own in self.owned.values() for name in own.values()}
        self.routes = {
            name: "layer rule" if name in covered else "vmap(grad)" for name in self.names
        }

    # ------------------------------------------------------------------ the sums
    def aligned(self, x: Tensor) -> None:
        """Keep the layer rules only for layers whose input and output carry the batch
        axis: run on one input and on two, and require every call's leading size to be
        the batch size both times. A layer whose shapes do not depend on the batch at all
        (a position embedding fed ``arange(T)``: its ``δ`` would be summed over the
        inputs) is a *broadcast* layer: its output is expanded to the batch in the hooked
        pass (``δ`` per input), which is kept only where that leaves ``h`` unchanged
        (checked with the rules). Any other layer takes ``vmap(grad)``."""
        batched, constant = batch_axis_layers(self.view, self.layers, x)
        for mname in self.layers:
            if mname in constant:
                self.broadcast.add(mname)
            elif mname not in batched:
                for name in self.owned[mname].values():
                    self.routes[name] = "vmap(grad)"
        self._aligned = True

    def __call__(self, x: Tensor, cot: Tensor) -> dict[str, Tensor]:
        if not self._aligned:
            self.aligned(x)
        check = x is not self._proved_on
        # each layer's sums are added here the moment they are formed: one parameter-sized
        # tensor per parameter, never a second copy per chunk of inputs
        total: dict[str, Tensor] = {}
        for start in range(0, x.shape[0], INPUT_CHUNK):
            rows = slice(start, start + INPUT_CHUNK)
            while True:
                # a checked chunk may be redone (_Retry): its sums wait until it is proved
                into = {} if check else total
                try:
                    self._chunk(x[rows], cot[rows], check, into)
                    break
                except _Retry:
                    continue  # a layer failed its proof and moved to vmap(grad): again
            if into is not total:
                for n, t in into.items():
                    _add(total, n, t)
        self._proved_on = x
        for n in self.names:  # a parameter that never reached h
            if n not in total:
                total[n] = torch.zeros_like(self.view.params[n])
        return total

    def _chunk(self, x: Tensor, cot: Tensor, check: bool, into: dict[str, Tensor]) -> None:
        """One chunk of inputs, its sums added into ``into``. Each layer's sums are formed
        the moment the backward pass reaches its output (a tensor hook), and its ``δ``
        dropped: one layer's gradients alive at a time, as in a training step's backward
        pass."""
        view = self.view
        ruled = [
            m for m in self.layers
            if any(self.routes[p] == "layer rule" for p in self.owned[m].values())
        ]  # fmt: skip
        if ruled:
            n = x.shape[0]
            inputs: dict[str, list] = {m: [] for m in ruled}  # each call's input z
            deltas: dict[str, dict] = {m: {} for m in ruled}  # call → δ, until all arrived
            done: dict[str, tuple] = {}
            # a zero leaf added to every recorded output: asking for its gradient runs the
            # backward pass through every layer without forming the parameters' gradients
            anchor = torch.zeros((), dtype=view.dtype, device=view.device, requires_grad=True)

            def arrived(mname, call):
                def hook(delta):
                    deltas[mname][call] = delta.detach()
                    if len(deltas[mname]) == len(inputs[mname]):
                        done[mname] = self._layer_sums(
                            mname, inputs[mname], deltas[mname], n, check
                        )
                        inputs[mname], deltas[mname] = [], {}
                        settle(mname)

                return hook

            # the check: each parameter's batch gradient is compared with its layer's
            # Σ_n g_n the moment autograd forms it (a hook on the leaf), and handed back as
            # a zero of no storage — never every parameter's gradient at once
            owner = {
                name: m for m in ruled for name in self.owned[m].values()
                if self.routes[name] == "layer rule"
            }  # fmt: skip
            # on inputs checked before, nothing is left to prove
            unproved = {m: {p for p, o in owner.items() if o == m and check} for m in ruled}
            early: dict[str, Tensor] = {}  # gradients that came before their layer's sums

            def settle(mname, final=False):
                """Prove what can be proved of a layer; once all is, add its sums."""
                for name in sorted(unproved[mname]):
                    if name in early or final:
                        self._prove_one(mname, name, done[mname], early.pop(name, None), n)
                        unproved[mname].discard(name)
                if not unproved[mname]:
                    self._add_layer(into, mname, done[mname])
                    done[mname] = None

            def on_grad(name):
                def hook(g):
                    mname = owner[name]
                    early[name] = g.detach()
                    if done.get(mname) is not None:
                        settle(mname)
                    return g.new_zeros(()).expand_as(g)

                return hook

            def recorder(mname):
                def hook(module, args, result):
                    call = len(inputs[mname])
                    z = args[0].detach()
                    if mname in self.broadcast:  # the same for every input: per input
                        z, result = _to_batch(z, n), _to_batch(result, n)
                    inputs[mname].append(z)
                    result = result + anchor
                    result.register_hook(arrived(mname, call))
                    return result

                return hook

            handles = [self.layers[m].register_forward_hook(recorder(m)) for m in ruled]
            params = {n: p.detach() for n, p in view.params.items() if n in self.names}
            if check:  # only the ruled parameters' batch gradients are needed
                for name in owner:
                    params[name].requires_grad_(True)
                    params[name].register_hook(on_grad(name))
            expanded = check and any(m in self.broadcast for m in ruled)
            try:
                h = view.batch(params, x)
            except Exception:  # noqa: BLE001 - the user's forward, on an expanded tensor
                if not expanded:
                    raise
                h = None
            finally:
                for handle in handles:
                    handle.remove()
            if expanded:
                with torch.no_grad():
                    plain = view.batch(None, x)
                if h is None or not torch.equal(h.detach(), plain):
                    # the expanded output is not used by broadcasting alone: vmap(grad)
                    for m in self.broadcast & set(ruled):
                        for name in self.owned[m].values():
                            self.routes[name] = "vmap(grad)"
                    self.broadcast.clear()
                    raise _Retry()
            psi = (h * cot.to(h.dtype)).sum()
            wrt = [anchor, *(params[name] for name in owner)] if check else [anchor]
            grads = torch.autograd.grad(psi, wrt, allow_unused=True)
            del h, psi, grads
            for m in ruled:
                if m not in done:  # outputs that never reached h (or some calls did not)
                    done[m] = self._layer_sums(m, inputs[m], deltas[m], n, check)
                if done[m] is not None:  # a gradient that never came is a zero
                    settle(m, final=True)
        fallback = [name for name in self.names if self.routes[name] == "vmap(grad)"]
        if fallback:
            for name, t in self._vmap(x, cot, fallback).items():
                _add(into, name, t)

    def _add_layer(self, into, mname, layer_sums) -> None:
        """Add a layer's sums (proved, or on inputs checked before) into ``into``."""
        own, sums = layer_sums[0], layer_sums[1]
        for attr, name in own.items():
            _add(into, name, sums[attr])

    def _layer_sums(self, mname: str, inputs: list, deltas: dict, n: int, check: bool):
        """``(sums, summed, terms)`` of a layer from its calls' inputs and ``δ``s:
        ``Σ_n g_n∘g_n``, ``Σ_n g_n`` (for the check) and the size of the terms summed."""
        module = self.layers[mname]
        own = {a: p for a, p in self.owned[mname].items() if self.routes[p] == "layer rule"}
        calls = [(inputs[k], deltas[k]) for k in sorted(deltas)]
        sums, summed = {}, {}
        if len(calls) == 1 and isinstance(module, nn.Linear) and calls[0][0].dim() == 2:
            z, delta = calls[0]  # one position: one GEMM, nothing per input
            if "weight" in own:
                sums["weight"] = (delta * delta).T @ (z * z)
                if check:
                    summed["weight"] = delta.T @ z
            if "bias" in own:
                sums["bias"] = (delta * delta).sum(0)
                summed["bias"] = delta.sum(0)
        else:
            prefix = f"{mname}." if mname else ""
            stats = tuple(
                self.view.constants.get(prefix + b) for b in ("running_mean", "running_var")
            )
            pieces = [_pieces(module, z, delta, stats) for z, delta in calls]
            for attr in own:
                shape = getattr(module, attr).shape
                zero = torch.zeros(shape, dtype=self.view.dtype, device=self.view.device)
                parts = [p[attr] for p in pieces]
                if not parts:  # the layer's output did not reach h
                    sums[attr], summed[attr] = zero, zero.clone()
                    continue
                kind = parts[0][0]
                # several calls of the layer: their positions, side by side (one call: as
                # it is — a language model head's δ is [n, T, V])
                left = _side_by_side([q[1] for q in parts])
                right = None if parts[0][2] is None else _side_by_side([q[2] for q in parts])
                # Σ_n g_n is needed only for the check
                if kind == "outer":
                    s2, s1 = _outer_square_sums(left, right, check)
                elif kind == "rows":
                    s2, s1 = _row_square_sums(left, right, shape[0], check)
                else:  # "diagonal": Σ_t left∘right, or Σ_t left without a right
                    g = left.sum(1) if right is None else (left * right).sum(1)
                    s2, s1 = (g * g).sum(0), g.sum(0)
                sums[attr] = s2.reshape(shape)
                summed[attr] = None if s1 is None else s1.reshape(shape)
        # the size of the terms summed (‖δ‖‖z‖, Cauchy–Schwarz): where the gradient itself
        # cancels to nothing (a key bias under softmax), rounding is relative to them
        terms = sum(
            float(d.norm()) * (float(z.norm()) if z.is_floating_point() else math.sqrt(z.numel()))
            for z, d in calls
        ) if check else 0.0  # fmt: skip
        return own, sums, summed, terms

    def _prove_one(self, mname, name, layer_sums, batch, n) -> None:
        """Check parameter ``name``'s ``Σ_n g_n`` from its layer's rule against the batch
        gradient ``batch`` (``None``: zero); a parameter that fails also enters ``h``
        outside the layer, is never trusted again, and the chunk is redone (``_Retry``)."""
        own, sums, summed, terms = layer_sums
        attr = next(a for a, p in own.items() if p == name)
        # in place, one parameter-sized temporary: |Σ_n g_n − batch| ≤ ulps·eps·(√n·√Σ_n g_n²
        # + terms), where √n·√(Σ_n g_n²) ≥ Σ_n |g_n| per entry
        diff = summed[attr] if batch is None else summed[attr].sub_(batch)
        eps = torch.finfo(diff.dtype).eps
        tol = sums[attr].sqrt().mul_(math.sqrt(n)).add_(terms).mul_(PROOF_ULPS * eps)
        if not bool((diff.abs_() <= tol).all()):
            self.routes[name] = "vmap(grad)"
            raise _Retry()
        summed[attr] = None  # proved: Σ_n g_n is not needed any more

    def _vmap(self, x: Tensor, cot: Tensor, names: list) -> dict[str, Tensor]:
        view = self.view
        fixed = {n: p for n, p in view.params.items() if n not in names}
        free = {n: view.params[n] for n in names}

        def psi(ps, xi, ci):
            return (view.single({**fixed, **ps}, xi) * ci).sum()

        g = vmap(grad(psi), in_dims=(None, 0, 0))(free, x, cot.to(view.dtype))
        return {n: g[n].detach().pow(2).sum(0) for n in names}


def batch_axis_layers(view, layers: dict[str, nn.Module], x: Tensor) -> tuple[set, set]:
    """The layers (of ``{name: module}``) whose every call's input and output lead with the
    batch axis, and those whose calls do not depend on the batch at all (a position
    embedding fed ``arange(T)``): the model run on one input and on two, each call's
    leading sizes compared (a size that merely equals the batch size is not mistaken for
    it)."""
    sizes: dict[str, list] = {m: [] for m in layers}

    def recorder(mname):
        def hook(module, args, result):
            shapes = [tuple(t.shape) if isinstance(t, Tensor) else None
                      for t in (args[0] if args else None, result)]  # fmt: skip
            sizes[mname][-1].append(shapes)

        return hook

    handles = [m.register_forward_hook(recorder(name)) for name, m in layers.items()]
    try:
        for batch in (x[:1], torch.cat([x[:1], x[:1]])):
            for calls in sizes.values():
                calls.append([])
            with torch.no_grad():
                view.batch(None, batch)
    finally:
        for handle in handles:
            handle.remove()

    def lead(shape):
        return shape[0] if shape else None

    batched, constant = set(), set()
    for mname, (one, two) in sizes.items():
        ok = bool(one) and len(one) == len(two)
        if ok and all(
            [lead(a) for a in c1] == [1, 1] and [lead(b) for b in c2] == [2, 2]
            for c1, c2 in zip(one, two, strict=True)
        ):
            batched.add(mname)
        elif ok and all(c1 == c2 and None not in c1 for c1, c2 in zip(one, two, strict=True)):
            constant.add(mname)
    return batched, constant


def _to_batch(t: Tensor, n: int) -> Tensor:
    """A tensor that is the same for every input, with a batch axis of ``n``: its leading
    axis of size 1 expanded (``[1, T]`` position ids), or a new leading axis."""
    if t.dim() and t.shape[0] == 1:
        return t.expand(n, *t.shape[1:])
    return t.unsqueeze(0).expand(n, *t.shape)


def _add(into: dict[str, Tensor], name: str, t: Tensor) -> None:
    """``into[name] += t``, the first term kept as it is (no zero tensor to add it to)."""
    if name in into:
        into[name] += t
    else:
        into[name] = t


class _Retry(Exception):
    """A layer rule failed its proof: the chunk is recomputed with it on vmap(grad)."""


#: elements of one block of per-input gradients (inputs × output rows × input columns)
LAYER_ELEMENTS = 2**24


def _side_by_side(tensors: list[Tensor]) -> Tensor:
    """The calls' tensors concatenated along the positions axis (one call: itself)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, 1)


def _outer_square_sums(d: Tensor, z: Tensor, with_sum: bool = True):
    """``Σ_n g_n∘g_n`` and ``Σ_n g_n`` (``None`` unless ``with_sum``) for ``g_n = Σ_t d_{nt}
    z_{nt}ᵀ`` (``d`` ``[n, T, o]``, ``z`` ``[n, T, i]``), in blocks of inputs and output rows
    of at most :data:`LAYER_ELEMENTS` per-input entries (one layer's per-input gradients,
    bounded)."""
    n, _, o = d.shape
    i = z.shape[-1]
    if o * i <= LAYER_ELEMENTS:
        inputs, rows = max(1, LAYER_ELEMENTS // (o * i)), o
    else:
        inputs, rows = 1, max(1, LAYER_ELEMENTS // i)
    sums = torch.zeros(o, i, dtype=d.dtype, device=d.device)
    summed = torch.zeros_like(sums) if with_sum else None
    for n0 in range(0, n, inputs):
        zc = z[n0 : n0 + inputs]
        for r0 in range(0, o, rows):
            g = torch.einsum("nto,nti->noi", d[n0 : n0 + inputs, :, r0 : r0 + rows], zc)
            if with_sum:
                summed[r0 : r0 + rows] += g.sum(0)
            sums[r0 : r0 + rows] += g.mul_(g).sum(0)
    return sums, summed


def _row_square_sums(d: Tensor, ids: Tensor, rows: int, with_sum: bool = True):
    """An embedding's ``Σ_n g_n∘g_n`` and ``Σ_n g_n`` (``None`` unless ``with_sum``): ``g_n``
    adds ``d_{nt}`` ``[n, T, w]``
    into row ``ids_{nt}``; per input the positions of one token are summed first (one row
    per distinct token and input, never a ``[n, V, w]`` tensor)."""
    n, T, w = d.shape
    keys = (torch.arange(n, device=ids.device)[:, None] * rows + ids).reshape(-1)
    unique, inverse = torch.unique(keys, return_inverse=True)
    g = torch.zeros(unique.shape[0], w, dtype=d.dtype, device=d.device)
    g.index_add_(0, inverse, d.reshape(-1, w))
    token = unique % rows
    sums = torch.zeros(rows, w, dtype=d.dtype, device=d.device)
    summed = None
    if with_sum:
        summed = torch.zeros_like(sums)
        summed.index_add_(0, token, g)
    sums.index_add_(0, token, g.mul_(g))
    return sums, summed


def _pieces(module: nn.Module, z: Tensor, delta: Tensor, stats=None) -> dict[str, tuple]:
    """One call of a layer as ``{attr: (kind, left, right)}`` with a positions axis 1: its
    per-input gradient is ``Σ_t left_t right_tᵀ`` (``"outer"``: Linear, convolutions),
    ``left`` added into the rows ``right`` (``"rows"``: embeddings) or ``Σ_t left_t∘right_t``
    (``"diagonal"``: norm weights; ``right`` ``None``: ``Σ_t left_t``, biases), from the
    layer's input ``z`` and the gradient ``δ`` at its output (module docstring); ``stats``
    the running mean and variance of a batch norm (the private copy's buffers live in the
    model view, not on the module)."""
    rights = input_pieces(module, z, stats)
    lefts = delta_pieces(module, delta, z.shape[0], rights)
    return {attr: (kind, lefts[attr], right) for attr, (kind, right) in rights.items()}


def input_pieces(module: nn.Module, z: Tensor, stats=None) -> dict[str, tuple]:
    """The input side of :func:`_pieces`: ``{attr: (kind, right)}`` (a convolution's input
    unfolded, a norm's ``x̂``, an embedding's token ids), computed once per call whatever
    the number of cotangents."""
    n = z.shape[0]
    if isinstance(module, nn.Linear):
        return {"weight": ("outer", z.reshape(n, -1, z.shape[-1])), "bias": ("diagonal", None)}
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        two = isinstance(module, nn.Conv2d)
        zz = z if two else z[..., None]
        kernel = module.kernel_size if two else (module.kernel_size[0], 1)
        dil = module.dilation if two else (module.dilation[0], 1)
        pad = module.padding if two else (module.padding[0], 0)
        stride = module.stride if two else (module.stride[0], 1)
        cols = nn.functional.unfold(zz, kernel, dilation=dil, padding=pad, stride=stride)
        return {"weight": ("outer", cols.transpose(1, 2)), "bias": ("diagonal", None)}
    if isinstance(module, nn.Embedding):
        return {"weight": ("rows", z.reshape(n, -1))}
    # norms: the normalised input x̂ (without the affine map), channels last
    if isinstance(module, nn.LayerNorm):
        xhat = nn.functional.layer_norm(z, module.normalized_shape, eps=module.eps)
        k = len(module.normalized_shape)
        xf = xhat.reshape(n, -1, *xhat.shape[z.dim() - k :]).flatten(2)
    else:
        if isinstance(module, nn.GroupNorm):
            xhat = nn.functional.group_norm(z, module.num_groups, eps=module.eps)
        else:  # evaluation-mode batch norm: the running statistics
            shape = (1, -1) + (1,) * (z.dim() - 2)
            mean, var = stats
            xhat = (z - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + module.eps)
        xf = xhat.reshape(n, xhat.shape[1], -1).transpose(1, 2)  # [n, positions, C]
    return {"weight": ("diagonal", xf), "bias": ("diagonal", None)}


def delta_pieces(module: nn.Module, delta: Tensor, n: int, rights: dict) -> dict[str, Tensor]:
    """The ``δ`` side of :func:`_pieces`: ``{attr: left}``, positions on axis 1, for ``δ``
    with ``n`` leading rows (``K`` cotangents of the same inputs stacked as ``K·n`` rows
    give ``K·n`` rows; ``rights`` then repeats per cotangent)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        df = delta.reshape(n, delta.shape[1], -1).transpose(1, 2)  # [n, L, O]
        return {"weight": df, "bias": df}
    if isinstance(module, nn.Embedding):
        ids = rights["weight"][1]
        df = delta.reshape(n, ids.shape[1], -1)
        if module.padding_idx is not None:
            keep = (ids != module.padding_idx)[..., None]
            df = df * keep.repeat(n // ids.shape[0], 1, 1)
        return {"weight": df}
    if isinstance(module, nn.Linear) or isinstance(module, nn.LayerNorm):
        width = rights["weight"][1].shape[-1] if isinstance(module, nn.LayerNorm) else None
        df = delta.reshape(n, -1, width or delta.shape[-1])
        return {"weight": df, "bias": df}
    df = delta.reshape(n, delta.shape[1], -1).transpose(1, 2)  # group / batch norms
    return {"weight": df, "bias": df}


__all__ = ["INPUT_CHUNK", "SquaredGradientSums"]
