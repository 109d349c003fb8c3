"""The report: a text table for the terminal and ``report.md`` with the figures."""

from __future__ import annotations

import platform
import textwrap
from datetime import datetime, timezone
from pathlib import Path

from fishsym.symbolic.records import format_table
from paper_checks._core import ClaimResult

#: key numbers shown per claim in the summary table (all of them are in its section)
TABLE_NUMBERS = 4

TITLE = (
    "# Reproducing *Trade-Offs of Diagonal Fisher Information Matrix Estimators* "
    "(Soen & Sun, NeurIPS 2024)\n"
)

INTRO = (
    TITLE
    + """

**What this is about.** The *Fisher information* says how strongly a model's predictions
react to each of its parameters. Training methods (natural gradient, Adam-like
preconditioners), continual learning (EWC), model merging and pruning all use its
**diagonal**: one number per parameter. For a network it cannot be computed in closed
form, so it is *estimated* from labels drawn from the model itself, in one of two ways:

* **Î₁, the squared score**: the square of the derivative of the log-likelihood
  (first derivatives only);
* **Î₂, the negative Hessian**: minus the second derivative of the log-likelihood
  (second derivatives).

Both are right on average. The paper asks how much they *scatter* — their variances
V₁ and V₂ — gives exact formulas for them (its Lemma 3.1), bounds them by extreme
eigenvalues (Theorem 4.1, with Corollary 4.2, Proposition 4.3, Lemma 4.8, Theorem 4.7 on
random inputs, Theorem 5.2 for classification, off-diagonal bounds in Appendix C), and
shows on MNIST and on toy problems that the scatter can be as large as the quantity
itself and that which estimator is better depends on the layer: on its MNIST network
Î₁ scatters less in layers 1–3 and Î₂ is exact (V₂ = 0) in the last layer. It does not
claim that the better estimator changes over training, and neither does this report.

**Claim by claim, in short.**

* *Where we agree.* The closed forms of V₁ and V₂; unbiasedness; V₂ = 0 in the last
  linear layer for any family (Remark 4.4) and everywhere in ReLU networks; Theorem 4.1
  as stated (eqs. 7–9, with M = μ₄ − I⊗I) for every parameter of every network checked;
  Corollary 4.2, Proposition 4.3, Theorem 5.2, Lemma 4.8, Theorem 4.7 and the
  off-diagonal bounds of Appendix C; Remark 4.5 on the second-to-last layer; the
  Gaussian CV √(2/N). On MNIST with the paper's own protocol our upper bound on V₁ is
  ≈ 45–57× V₁ in layers 1–3 (the paper: ≈ 50×), V₁ < V₂ in layers 1–3 at every epoch and
  V₂ = 0 in the last layer, as it reports.
* *Where we differ, and why that is not a contradiction.* Our bound on V₂ is ≈ 5× V₂
  (the paper: ≈ 10×) and our layer-1 variances are far below e⁻¹⁰: the paper does not
  give its widths, optimiser, learning rate, dropout rate, seeds or test input, and
  layer-1 means include the many weights on blank MNIST pixels (exactly zero). The
  section `mnist_paper_protocol` lists our choices.
* *Where the paper's statement is ambiguous.* λ̃ of a 4-tensor is a sup over the sphere,
  not an eigenvalue: we use certified values (closed forms, Cor. 4.2, Thm. 5.2, the
  matricisation) and say which; Î₂ is "not defined" for ReLU networks in the paper
  (σ ∉ C²) — we use autograd's convention σ'' = 0 almost everywhere; the constants of the
  trace corollary (Cor. 4.6) could not be read reliably: we prove and check the
  trace-type form Σ_(i∈g) I(θ_i|x) ≤ ‖J_g‖₂² tr I(h) per layer instead, not the paper's
  constants.
* *What we could not read.* The figures and Table 1 of the paper are images; only its
  text was available, so figure-level details (axes, exact curves) are not compared.

**What this report does.** Each row below is one claim of the paper. fishsym checks it
by reaching the same numbers along independent routes: symbolic proofs (sympy), the
exact closed forms computed for every parameter of a real network (the fishsym engine),
brute-force enumeration of every possible label with automatic differentiation (no
formula involved), and Monte Carlo simulation judged by z-scores with a stated
false-alarm rate. **PASS** means every sub-check of the claim agreed; **FAIL** says which
sub-check did not and why (including a component that is not available).

**Words used.** *Single-label variance*: the variance of an estimate made from one label
per input (with N labels it is divided by N). *Layer*: one `Linear` layer's weights and
biases together; per-layer numbers are averages over its parameters. *Bounds*: lower and
upper limits for the variances from extreme eigenvalues (docs/theory.md §3); *log-ratio*
`log(upper / exact) ≥ 0`, 0 meaning the bound is tight. *Relative std*: standard
deviation divided by the Fisher information.
"""
)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _numbers_inline(res: ClaimResult, limit: int | None = TABLE_NUMBERS) -> str:
    items = list(res.numbers.items())
    shown = items if limit is None else items[:limit]
    text = "; ".join(f"{k} = {v}" for k, v in shown)
    if limit is not None and len(items) > limit:
        text += "; …"
    return text


def text_table(results: list[ClaimResult]) -> str:
    """The summary table for the terminal: check, result, seconds, first key numbers."""
    w = max(len(r.name) for r in results)
    lines = [f"{'check':<{w}}  result  seconds  key numbers", "-" * (w + 60)]
    for r in results:
        nums = _numbers_inline(r, 3)
        lines.append(f"{r.name:<{w}}  {r.status:<6}  {r.seconds:7.1f}  {nums}")
        if not r.passed:
            for rec in r.records:
                if not rec.passed:
                    lines.append(
                        f"{'':<{w}}    FAIL: {rec.claim} [{rec.family}] {rec.detail[:160]}"
                    )
    n_pass = sum(r.passed for r in results)
    lines.append("-" * (w + 60))
    lines.append(
        f"{n_pass}/{len(results)} claims PASS; total {sum(r.seconds for r in results):.1f} s"
    )
    return "\n".join(lines)


def _settings_text(settings: dict) -> str:
    if not settings:
        return "(none)"
    return ", ".join(f"{k} = {v}" for k, v in settings.items())


def write_report(results: list[ClaimResult], out_dir: Path, tier: str) -> Path:
    """Write ``out_dir/report.md``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = sum(r.seconds for r in results)
    n_pass = sum(r.passed for r in results)
    import torch

    lines = [INTRO]
    lines.append(
        f"**This run:** tier `{tier}` "
        + (
            "(quick: reduced sizes, stated per claim; `python -m paper_checks --full` runs the "
            "complete settings)"
            if tier == "quick"
            else ""
        )
        + f", {n_pass}/{len(results)} claims PASS, {total:.0f} s in total, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads.\n"
    )
    lines.append("## Summary\n")
    lines.append("| Claim | Where in the paper | How it is checked | Result | Key numbers | Time |")
    lines.append("|---|---|---|---|---|---|")
    for r in results:
        lines.append(
            f"| [{_cell(r.claim)}](#{r.name}) | {_cell(r.where)} | {_cell(r.method)} | "
            f"**{r.status}** | {_cell(_numbers_inline(r))} | {r.seconds:.0f} s |"
        )
    lines.append("")
    for r in results:
        lines.append(f'<a id="{r.name}"></a>\n')
        lines.append(f"## {r.claim} — **{r.status}**\n")
        lines.append(f"*Check `{r.name}` · {r.where} · {r.seconds:.1f} s*\n")
        if r.explanation:
            lines.append(f"**The claim.** {r.explanation}\n")
        lines.append(f"**How it is checked.** {r.method}\n")
        lines.append(f"**Settings ({r.tier} tier).** {_cell(_settings_text(r.settings))}\n")
        for note in r.notes:
            lines.append(textwrap.dedent(note).strip() + "\n")
        if r.numbers:
            lines.append("**Key numbers.**\n")
            lines.append("| quantity | value |")
            lines.append("|---|---|")
            for k, v in r.numbers.items():
                lines.append(f"| {_cell(k)} | {_cell(v)} |")
            lines.append("")
        for fig in r.figures:
            lines.append(f"![{fig}]({fig})\n")
        lines.append("<details><summary>Sub-checks</summary>\n")
        lines.append("```")
        lines.append(format_table(r.records))
        lines.append("```")
        lines.append("</details>\n")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


__all__ = ["INTRO", "text_table", "write_report"]
