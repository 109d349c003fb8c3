"""EWC on split MNIST with every Fisher people compute (docs/theory.md §13).

After van de Ven, *On the Computation of the Fisher Information in Continual Learning*
(ICLR 2025 blogpost): the bundled digits in five tasks (0/1, 2/3, 4/5, 6/7, 8/9),
task-incremental (one network, ten logits, each task's loss and Fisher on its own two),
trained task after task with Adam and the penalty
``Σ_{k<t} (λ/2) Σ_i F_k,i (θ_i − θ*_k,i)²``. The Fisher ``F_k`` at the end of task ``k`` is
one of:

* ``exact`` — the mean Fisher over the task's inputs (:func:`fishsym.fisher_variances`);
* ``sampled_label`` — one label drawn from the model per input, squared scores;
* ``empirical`` — the data labels' squared scores;
* ``argmax_label`` — the most probable label's squared scores;
* ``minibatch`` — the squared gradient of the mean loss over shuffled batches of
  ``MINIBATCH`` inputs (the last, smaller batch dropped: see :func:`minibatch_rows`),
  labels drawn from the model, averaged over batches;
* ``adam`` — Adam's second moments of the task's training run, ``N·v̂``;
* ``diagonal_fisher`` — :func:`fishsym.diagonal_fisher` at 10 %, sampled (``exact=False``;
  the output layer in closed form).

Each variant's Fisher is audited against the exact one (:func:`fishsym.audit`); its
overall scale ``s`` predicts the strength that variant needs, ``λ*_exact / s``, which is
held against the best ``λ`` of a grid search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

TASKS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
VARIANTS = (
    "exact",
    "sampled_label",
    "empirical",
    "argmax_label",
    "minibatch",
    "adam",
    "diagonal_fisher",
)
#: the training batch size, and the mini-batch variant's (as training code reuses it)
MINIBATCH = 128


@dataclass
class SplitTask:
    """One task: its two digits, inputs and labels ``0/1`` (train and test)."""

    digits: tuple[int, int]
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class EWCRun:
    """One sequence of tasks: the final test accuracy per task and their mean, and the
    Fisher computed at the end of each task."""

    variant: str
    strength: float
    seed: int
    accuracies: list[float]
    fishers: list[dict] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)


def split_mnist(n_train: int, n_test: int, tasks=TASKS) -> list[SplitTask]:
    """The bundled digits split into tasks of two digits each (labels ``0``/``1``)."""
    from fishsym.data import mnist_tensors

    x, y, xt, yt = mnist_tensors(n_train=n_train, n_test=n_test)
    out = []
    for a, b in tasks:
        keep, keep_t = (y == a) | (y == b), (yt == a) | (yt == b)
        out.append(SplitTask((a, b), x[keep], (y[keep] == b).long(), xt[keep_t],
                             (yt[keep_t] == b).long()))  # fmt: skip
    return out


def make_model(seed: int, hidden: int = 100, n_tasks: int = len(TASKS)) -> nn.Sequential:
    """A ReLU MLP 784-hidden-hidden-(2·tasks), initialised from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 2 * n_tasks),
    )  # fmt: skip
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                bound = 1 / m.in_features**0.5
                m.weight.uniform_(-bound, bound, generator=gen)
                m.bias.uniform_(-bound, bound, generator=gen)
    return model


def task_head(t: int):
    """The output selector of task ``t``: its two logits."""

    def select(out):
        return out[:, 2 * t : 2 * t + 2]

    return select


def accuracy(model: nn.Module, task: SplitTask, t: int) -> float:
    with torch.no_grad():
        return float((task_head(t)(model(task.x_test)).argmax(1) == task.y_test).float().mean())


def train_task(model, task: SplitTask, t: int, epochs: int, penalty, seed: int):
    """Adam on the task's cross-entropy (batches of :data:`MINIBATCH`) plus ``penalty``;
    returns the optimizer (its second moments are the ``adam`` variant)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    head = task_head(t)
    for _ in range(epochs):
        order = torch.randperm(len(task.x), generator=gen)
        for start in range(0, len(order), MINIBATCH):
            rows = order[start : start + MINIBATCH]
            loss = nn.functional.cross_entropy(head(model(task.x[rows])), task.y[rows])
            if penalty is not None:
                loss = loss + penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return opt


def _scores(model, x, labels, t):
    """Per-input scores ``∂ℓ(y_n|x_n)/∂θ`` at the given labels: ``{name: [n, *shape]}``."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    head = task_head(t)

    def log_lik(p, xi, onehot):
        logits = head(functional_call(model, p, (xi[None],)))
        return (torch.log_softmax(logits, -1)[0] * onehot).sum()

    onehot = nn.functional.one_hot(labels, 2).to(x.dtype)
    return vmap(grad(log_lik), in_dims=(None, 0, 0))(params, x, onehot)


def minibatch_rows(n: int, gen: torch.Generator) -> torch.Tensor:
    """The inputs of the ``minibatch`` variant, in batch order: shuffled, and cut to whole
    batches of :data:`MINIBATCH`. Keeping a smaller last batch (``drop_last=False``) gives it
    the weight of a whole one with ``c = 1/b_last``: on the first task here (1,666 inputs,
    a last batch of 2) that inflates the exact mean from ``F̄/128`` to ``0.048·F̄``, and
    makes the strength a task needs depend on its size modulo 128."""
    order = torch.randperm(n, generator=gen)
    return order[: (n // MINIBATCH) * MINIBATCH]


def fisher_of(variant: str, model, task: SplitTask, t: int, opt, gen: torch.Generator) -> dict:
    """The ``variant``'s diagonal Fisher of ``model`` on the task's training inputs."""
    import fishsym

    x, head = task.x, task_head(t)
    if variant == "minibatch":
        x = x[minibatch_rows(len(x), gen)]
    with torch.no_grad():
        p = torch.softmax(head(model(x)), -1)
    if variant == "exact":
        res = fishsym.fisher_variances(
            model, x, "categorical", output=head, var2=False, bounds=False,
            dtype=torch.float32, progress=False,
        )  # fmt: skip
        return res.fisher
    if variant == "diagonal_fisher":
        # sampled (exact=False): on a network this small the default route would be the
        # exact one, and the variant the exact Fisher again; the head stays in closed form
        est = fishsym.diagonal_fisher(model, x, "categorical", output=head, generator=gen,
                                      dtype=torch.float32, rel_error=0.1, exact=False)  # fmt: skip
        return est.value
    if variant == "adam":
        return fishsym.adam_fisher(opt, model, len(x))
    if variant in ("sampled_label", "minibatch"):
        labels = torch.multinomial(p, 1, generator=gen)[:, 0]
    elif variant == "empirical":
        labels = task.y
    elif variant == "argmax_label":
        labels = p.argmax(1)
    else:
        raise ValueError(variant)
    scores = _scores(model, x, labels, t)
    if variant != "minibatch":
        return {k: (g * g).mean(0) for k, g in scores.items()}
    out = {}
    for k, g in scores.items():  # the gradient of the mean loss per batch, squared
        squares = [g[s : s + MINIBATCH].mean(0) ** 2 for s in range(0, len(g), MINIBATCH)]
        out[k] = torch.stack(squares).mean(0)
    return out


def run_ewc(variant: str, strength: float, seed: int, tasks: list[SplitTask], epochs: int,
            keep_fishers: bool = False) -> EWCRun:  # fmt: skip
    """Train on the tasks in order with EWC (the ``variant``'s Fisher, strength ``λ``)."""
    model = make_model(seed, n_tasks=len(tasks))
    gen = torch.Generator().manual_seed(seed + 10_000)
    anchors: list[tuple[dict, dict]] = []  # (F_k, θ*_k)

    def penalty(m):
        total = 0.0
        for fisher, star in anchors:
            for name, q in m.named_parameters():
                total = total + 0.5 * strength * (fisher[name] * (q - star[name]) ** 2).sum()
        return total

    fishers = []
    for t, task in enumerate(tasks):
        opt = train_task(model, task, t, epochs, penalty if anchors else None, seed + t)
        if t < len(tasks) - 1:
            fisher = {k: v.detach().float() for k, v in fisher_of(variant, model, task, t, opt,
                                                                  gen).items()}  # fmt: skip
            star = {k: v.detach().clone() for k, v in model.named_parameters()}
            anchors.append((fisher, star))
            if keep_fishers:
                fishers.append(fisher)
    accs = [accuracy(model, task, t) for t, task in enumerate(tasks)]
    return EWCRun(variant, strength, seed, accs, fishers)


def strength_grid(center: float, steps: int, factor: float = 2.0) -> list[float]:
    """``center × factor^k`` for ``k = −steps … steps``."""
    return [center * factor**k for k in range(-steps, steps + 1)]


__all__ = [
    "EWCRun",
    "MINIBATCH",
    "SplitTask",
    "TASKS",
    "VARIANTS",
    "accuracy",
    "fisher_of",
    "make_model",
    "minibatch_rows",
    "run_ewc",
    "split_mnist",
    "strength_grid",
    "task_head",
    "train_task",
]
