"""Balancers against known answers, the per-task gradient mechanics (representation and parameters), the gradient
conflict monitor, and every balancer on every kind of architecture."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from shopmtl import Experiment
from shopmtl.balancing import BALANCERS, GradientBalancer
from shopmtl.balancing.cagrad import cagrad_direction
from shopmtl.balancing.dwa import dwa_weights
from shopmtl.balancing.mgda import min_norm_weights
from shopmtl.balancing.nash_mtl import nash_weights
from shopmtl.balancing.pcgrad import pcgrad_project
from shopmtl.config import config_from_dict, load_config
from shopmtl.errors import ConfigError
from shopmtl.training.conflict import ConflictMonitor

ALL = BALANCERS.names()


def test_every_balancer_is_registered():
    assert set(ALL) >= {"equal", "static", "uncertainty", "dwa", "gradnorm", "rlw", "pcgrad", "cagrad", "mgda",
                        "nash_mtl", "famo"}


# ---------------------------------------------------------------- known answers
def test_pcgrad_leaves_no_negative_inner_product_between_projected_gradients():
    gen = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(200):
        g = torch.randn(2, 6, generator=gen, dtype=torch.float64)
        p = pcgrad_project(g)
        conflicts += float(g[0] @ g[1]) < 0
        assert float(p[0] @ p[1]) >= -1e-9
        if float(g[0] @ g[1]) >= 0:
            assert torch.equal(p, g)  # no conflict: untouched
        else:
            assert abs(float(p[0] @ g[1])) < 1e-9 and abs(float(p[1] @ g[0])) < 1e-9
    assert conflicts > 50


def test_mgda_on_two_tasks_matches_the_closed_form_min_norm_point():
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        g = torch.randn(2, 5, generator=gen, dtype=torch.float64)
        alpha = min_norm_weights(g @ g.T)
        closed = float(((g[1] - g[0]) @ g[1]) / ((g[0] - g[1]) @ (g[0] - g[1])))
        closed = min(max(closed, 0.0), 1.0)
        assert float(alpha[0]) == pytest.approx(closed, abs=1e-9)
        assert float(alpha.sum()) == pytest.approx(1.0)


def test_mgda_frank_wolfe_finds_the_min_norm_point_of_three_gradients():
    g = torch.tensor([[1.0, 0.2, 0.0], [-0.5, 1.0, 0.3], [0.1, -0.8, 1.0]], dtype=torch.float64)
    alpha = min_norm_weights(g @ g.T, iters=2000, tol=1e-12)
    best = min(
        (float(((torch.tensor([a, b, 1 - a - b], dtype=torch.float64) @ g) ** 2).sum())
         for a, b in itertools.product(np.linspace(0, 1, 201), repeat=2) if a + b <= 1 + 1e-12))
    assert float(((alpha @ g) ** 2).sum()) <= best + 1e-6
    assert (alpha >= 0).all() and float(alpha.sum()) == pytest.approx(1.0)


def test_cagrad_with_c_zero_is_the_mean_gradient_and_otherwise_improves_the_worst_task():
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    d, w = cagrad_direction(g, 0.0)
    assert torch.allclose(d, g.mean(0)) and torch.allclose(w, torch.full((3,), 1 / 3, dtype=torch.float64))
    g = torch.tensor([[1.0, 0.0], [-0.6, 1.0]], dtype=torch.float64)  # conflicting pair
    d, _ = cagrad_direction(g, 0.5, rescale=False)
    assert float((g @ d).min()) > float((g @ g.mean(0)).min())  # the worse task gains more than under the mean


def test_dwa_weights_follow_the_formula():
    w = dwa_weights({"a": 0.5, "b": 0.9}, {"a": 1.0, "b": 1.0}, temperature=2.0)
    ea, eb = math.exp(0.5 / 2), math.exp(0.9 / 2)
    assert w["a"] == pytest.approx(2 * ea / (ea + eb)) and w["b"] == pytest.approx(2 * eb / (ea + eb))
    assert sum(w.values()) == pytest.approx(2.0)


def test_nash_mtl_solves_the_bargaining_equations():
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(3, 10, generator=gen, dtype=torch.float64)
    k = g @ g.T
    alpha = nash_weights(k)
    assert (alpha > 0).all()
    assert torch.allclose(k @ alpha, 1 / alpha, rtol=1e-6)
    d = alpha @ g
    gains = alpha * (g @ d)  # each task's share of the improvement: all equal to 1
    assert torch.allclose(gains, torch.ones(3, dtype=torch.float64), rtol=1e-6)


# ---------------------------------------------------------------- toy models through the balancer interface
class Toy(nn.Module):
    """A shared linear layer and a head per task; `shared_parameters()` and a shared representation."""

    def __init__(self, n_in: int, tasks: list[str], width: int = 8):
        super().__init__()
        self.shared = nn.Linear(n_in, width)
        self.heads = nn.ModuleDict({t: nn.Linear(width, 1) for t in tasks})
        self.sharing = self  # what balancers read the representation from
        self.has_representation = True
        self.representation = None

    def shared_parameters(self):
        return list(self.shared.parameters())

    def forward(self, x):
        self.representation = torch.tanh(self.shared(x))
        return {t: h(self.representation).squeeze(-1) for t, h in self.heads.items()}


def toy_config(method: str, tasks: list[str], **options):
    return config_from_dict({
        "name": "toy", "data": {"source": {"format": "csv"}},
        "features": {"x": {"type": "numeric"}}, "tasks": {t: {"type": "regression"} for t in tasks},
        "balance": {"method": method, **options}})


def train_toy(method: str, targets: dict, x: torch.Tensor, steps: int, lr: float = 0.02, **options):
    torch.manual_seed(0)
    tasks = list(targets)
    model = Toy(x.shape[1], tasks)
    balancer = BALANCERS.get(method)(tasks, toy_config(method, tasks, **options), model)
    opt = torch.optim.Adam(list(model.parameters()) + balancer.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        out = model(x)
        losses = {t: ((out[t] - y) ** 2).mean() for t, y in targets.items()}
        opt.zero_grad()
        weights = balancer.backward(losses)
        opt.step()
        history.append(({t: float(v.detach()) for t, v in losses.items()}, weights))
    return model, balancer, history


def test_uncertainty_weights_converge_toward_inverse_noise_variances():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(500, 3, generator=gen)
    signal = x @ torch.tensor([1.0, -2.0, 0.5])
    sigma = {"a": 0.5, "b": 2.0}
    targets = {t: signal + s * torch.randn(500, generator=gen) for t, s in sigma.items()}
    _, balancer, history = train_toy("uncertainty", targets, x, steps=600, lr=0.05)
    w = history[-1][1]
    # at the optimum ½·e^(−s) = 1/(2·MSE) and the MSE is the noise variance
    for t, s in sigma.items():
        assert w[t] == pytest.approx(1 / (2 * s**2), rel=0.25)
    assert w["a"] / w["b"] == pytest.approx(sigma["b"] ** 2 / sigma["a"] ** 2, rel=0.3)


def test_gradnorm_equalises_training_rates_on_a_toy_problem():
    """Two regression tasks on one shared layer, one with a 10× larger target scale (the classic GradNorm toy):
    under equal weights their relative losses L(t)/L(0) drift apart; GradNorm keeps them closer."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(512, 4, generator=gen)
    base = torch.tanh(x @ torch.randn(4, generator=gen))
    targets = {"small": base + 0.05 * torch.randn(512, generator=gen),
               "large": 10 * torch.tanh(x @ torch.randn(4, generator=gen)) + 0.5 * torch.randn(512, generator=gen)}

    def spread(history):
        first, last = history[0][0], history[-1][0]
        rates = [last[t] / first[t] for t in first]
        return max(rates) / min(rates)

    _, _, equal = train_toy("equal", targets, x, steps=300)
    _, balancer, gradnorm = train_toy("gradnorm", targets, x, steps=300, alpha=1.5)
    assert spread(gradnorm) < spread(equal) * 0.8
    w = gradnorm[-1][1]
    assert w["small"] > w["large"] and sum(w.values()) == pytest.approx(2.0, rel=1e-5)


def test_famo_gives_more_weight_to_the_task_that_improved_less():
    model = Toy(2, ["a", "b"])
    balancer = BALANCERS.get("famo")(["a", "b"], toy_config("famo", ["a", "b"]), model)
    for _ in range(20):
        balancer.backward({"a": torch.tensor(1.0, requires_grad=True), "b": torch.tensor(1.0, requires_grad=True)})
        balancer.after_step(lambda: {"a": torch.tensor(0.5), "b": torch.tensor(0.99)})  # a improved, b hardly
    z = torch.softmax(balancer.logits.detach(), 0)
    assert float(z[1]) > float(z[0])


# ---------------------------------------------------------------- gradient mechanics
class Pick(GradientBalancer):
    """A test combination: only task `a`'s gradient on the shared part."""

    def combine(self, grads, losses):
        return grads[0], torch.tensor([1.0] + [0.0] * (len(grads) - 1))


@pytest.mark.parametrize("grad_on", ["representation", "parameters"])
def test_the_combined_direction_replaces_the_sum_on_the_shared_part_only(grad_on):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(64, 3, generator=gen)
    ys = {"a": torch.randn(64, generator=gen), "b": torch.randn(64, generator=gen)}
    torch.manual_seed(0)
    model = Toy(3, ["a", "b"])
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}

    def losses():
        out = model(x)
        return {t: ((out[t] - y) ** 2).mean() for t, y in ys.items()}

    balancer = Pick(["a", "b"], toy_config("pcgrad", ["a", "b"], grad_on=grad_on), model)
    assert balancer.on_representation == (grad_on == "representation")
    balancer.backward(losses())
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    # expected: shared layer ← gradient of task a alone; each head ← its own task's gradient
    model.zero_grad()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), reference[n])
    loss = losses()
    shared_a = torch.autograd.grad(loss["a"], model.shared_parameters(), retain_graph=True)
    (loss["a"] + loss["b"]).backward()
    assert torch.allclose(got["shared.weight"], shared_a[0], atol=1e-6)
    assert torch.allclose(got["shared.bias"], shared_a[1], atol=1e-6)
    for t in ("a", "b"):
        assert torch.allclose(got[f"heads.{t}.weight"], model.heads[t].weight.grad, atol=1e-6)


def test_gradient_options_are_checked():
    with pytest.raises(ConfigError, match=r"balance.grad_on: .*'auto', 'representation' or 'parameters'"):
        toy_config("mgda", ["a", "b"], grad_on="rep")
    with pytest.raises(ConfigError, match=r"balance.c: not an option of balancer `mgda`"):
        toy_config("mgda", ["a", "b"], c=0.5)
    with pytest.raises(ConfigError, match=r"balance.c: .*greater than or equal to 0"):
        toy_config("cagrad", ["a", "b"], c=-1)


# ---------------------------------------------------------------- in the training loop
@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "cross_stitch", "single"])
@pytest.mark.parametrize("method", ALL)
def test_every_balancer_trains_every_kind_of_architecture(synthetic_yaml, method, architecture):
    run = Experiment(load_config(synthetic_yaml, [f"balance.method={method}", f"model.architecture={architecture}",
                                                  "train.epochs=2", "train.conflict_every=3"])).fit(save=False)
    assert np.isfinite(run.metrics["test"]["liked"]["auc"])
    row = run.history[-1]
    assert all(np.isfinite(row[f"weight.{t}"]) for t in ("liked", "kind", "score"))
    if architecture != "single":
        assert -1 <= row["conflict.kind.liked"] <= 1 and 0 <= row["conflict.negative_share"] <= 1


def test_the_conflict_monitor_measures_the_cosine_of_task_gradients():
    theta = nn.Parameter(torch.zeros(3))
    monitor = ConflictMonitor(["a", "b", "c", "unlabelled"], [theta], every=2)
    vectors = {"a": torch.tensor([1.0, 0.0, 0.0]), "b": torch.tensor([-1.0, 1.0, 0.0]),
               "c": torch.tensor([2.0, 0.0, 0.0]), "unlabelled": torch.zeros(3)}
    assert monitor.due(global_step=7, epoch_step=1) and monitor.due(8, 3) and not monitor.due(9, 4)
    for _ in range(2):
        monitor.measure({t: theta @ v for t, v in vectors.items()})
    cols = monitor.columns()
    assert cols["conflict.a.b"] == pytest.approx(-1 / math.sqrt(2))
    assert cols["conflict.a.c"] == pytest.approx(1.0)
    assert not any("unlabelled" in k for k in cols)  # a task without a gradient is left out
    assert cols["conflict.negative_share"] == pytest.approx(2 / 3)  # a·b and b·c conflict, a·c does not
    assert monitor.columns() == {}  # reset after each epoch


def test_a_run_records_conflicts_and_weights_and_plots_them(synthetic_yaml):
    run = Experiment(load_config(synthetic_yaml, ["balance.method=uncertainty", "train.conflict_every=2"])).fit()
    assert {"conflict.kind.liked", "conflict.kind.score", "conflict.negative_share", "weight.liked"} <= set(
        run.history[0])
    report = (run.path / "report.html").read_text()
    assert "gradient conflict" in report and "task weights" in report
    off = Experiment(load_config(synthetic_yaml, ["train.conflict_every=null"])).fit(save=False)
    assert not any(k.startswith("conflict.") for k in off.history[0])


@pytest.mark.parametrize("architecture", ["soft", "adversarial", "omoe", "ple", "hierarchical"])
@pytest.mark.parametrize("method", ["mgda", "gradnorm", "famo"])
def test_the_other_architectures_take_every_gradient_path(synthetic_yaml, method, architecture):
    """mgda: per-task gradients (representation or parameters); gradnorm: gradient norms and its own optimiser;
    famo: the after-step re-forward — on the architectures the test above does not cover."""
    run = Experiment(load_config(synthetic_yaml, [f"balance.method={method}", f"model.architecture={architecture}",
                                                  "train.epochs=2"])).fit(save=False)
    assert np.isfinite(run.metrics["test"]["liked"]["auc"])
    assert all(np.isfinite(run.history[-1][f"weight.{t}"]) for t in ("liked", "kind", "score"))
