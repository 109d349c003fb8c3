"""Device handling: inputs (tensors or loader batches on the CPU) go to the model's device,
results live there and equal the CPU results. The CUDA tests skip without a GPU."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fishsym

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
#: the same float64 computation on two devices: reductions in another order only
RTOL = 1e-10


def _case(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
        x = torch.randn(9, 4)
    else:
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(32, 3))
        x = torch.randn(9, 1, 6, 6)
    return model.double(), x.double()


def test_results_live_on_the_model_device_cpu():
    model, x = _case("mlp")
    res = fishsym.fisher_variances(model, x.float(), "categorical")
    assert all(t.device.type == "cpu" and t.dtype == torch.float64 for t in res.var1.values())


@cuda
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_cuda_matches_cpu(kind):
    model, x = _case(kind)
    ref = fishsym.fisher_variances(model, x, "categorical")
    gpu = model.to("cuda")
    res = fishsym.fisher_variances(gpu, DataLoader(TensorDataset(x), batch_size=4), "categorical")
    for name, t in ref.var1.items():
        assert res.var1[name].device.type == "cuda"
        torch.testing.assert_close(res.var1[name].cpu(), t, rtol=RTOL, atol=0)
        torch.testing.assert_close(res.var2[name].cpu(), ref.var2[name], rtol=RTOL, atol=0)


@cuda
def test_cuda_sampling_routes():
    model, x = _case("mlp")
    gpu = model.to("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    est = fishsym.diagonal_fisher(gpu, x, "categorical", generator=gen, exact=False, max_labels=64)
    exact = fishsym.fisher_variances(model.cpu(), x, "categorical")
    for name, v in est.value.items():
        assert v.device.type == "cuda"
        # within 6 standard errors of the exact mean Fisher
        assert bool(
            ((v.cpu() - exact.fisher[name]).abs() <= 6 * est.stderr[name].cpu() + 1e-12).all()
        )
    from fishsym.montecarlo import estimate

    mc = estimate(model.to("cuda"), x, "categorical", 1, 8, gen)
    assert mc.n_inputs == x.shape[0]
