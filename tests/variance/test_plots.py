"""res.plot() and plot_over_training: what is drawn is what was computed — medians at
the computed values, exact zeros marked (never dropped), log axes, legends listing only
what is drawn, clear errors."""

import matplotlib

matplotlib.use("Agg")  # tests draw off-screen; the library never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import fishsym  # noqa: E402
from fishsym.errors import InvalidArgumentError, ShapeError  # noqa: E402


def _res(scale=1.0, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    with torch.no_grad():
        model[0].weight.mul_(scale)
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return fishsym.fisher_variances(model, x, "categorical", **kw)


def test_plot_draws_medians_zeros_and_label_budgets(tmp_path):
    res = _res(estimators=("squared_score", "neg_hessian", "hutchinson"))
    fig = res.plot(path=tmp_path / "res.png")
    assert (tmp_path / "res.png").stat().st_size > 0
    ax, ax_labels = fig.axes
    assert ax.get_yscale() == ax_labels.get_yscale() == "log"
    # V₂ of the last (linear) layer is exactly zero: one "= 0" mark, none elsewhere
    marks = [t for t in ax.texts if t.get_text() == "= 0"]
    assert len(marks) == 1
    assert marks[0].xy[0] > 0.5  # in the second layer's slot
    # the median entry's √V₁ of layer 1 is drawn at its computed value
    v1 = res.var["squared_score"]
    want = torch.cat([v1[n].reshape(-1) for n in res.groups["0"]]).sqrt()
    want = float(torch.quantile(want[want > 0], 0.5))
    ys = [float(line.get_ydata()[0]) for line in ax.lines if len(line.get_ydata()) == 1]
    assert any(abs(y - want) <= 1e-12 * want for y in ys)
    # the label budgets are those of labels_for
    heights = sorted(p.get_height() for p in ax_labels.patches)
    expected = sorted(
        v
        for e in ("squared_score", "neg_hessian", "hutchinson")
        for v in res.labels_for(0.1, estimator=e).values()
    )
    assert heights == pytest.approx(expected)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "√V Î₂ neg. Hessian" in legend and "|bias| merging recipe" not in legend
    # categorical: λ_min(μ₄) = λ_min(I) = 0, so no lower bound is drawn — nor listed
    assert "bound √V, upper" in legend and "bound √V, lower" not in legend
    plt.close(fig)


def test_plot_refuses_what_it_cannot_draw():
    with pytest.raises(ShapeError, match="per_sample=False"):
        _res(per_sample=True).plot()
    with pytest.raises(InvalidArgumentError, match="not computed"):
        _res().plot(estimators=("hutchinson",))


def test_plot_over_training(tmp_path):
    results = [_res(scale=s) for s in (0.5, 1.0, 2.0)]
    fig = fishsym.plot_over_training(results, steps=[0, 5, 10], path=tmp_path / "t.png")
    assert len(fig.axes) == 2
    first = fig.axes[0]
    fisher_line = first.lines[0]
    assert list(fisher_line.get_xdata()) == [0, 5, 10]
    med = [
        float(torch.quantile(torch.cat([r.fisher[n].reshape(-1) for n in r.groups["0"]]), 0.5))
        for r in results
    ]
    assert list(fisher_line.get_ydata()) == pytest.approx(med, rel=1e-12)
    # V₂ of the last layer is zero at every step: marked on the lower edge
    assert len(fig.axes[1].collections) == 1
    plt.close(fig)
    with pytest.raises(ShapeError, match="steps has 2 entries"):
        fishsym.plot_over_training(results, steps=[0, 1])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        fishsym.plot_over_training([])
