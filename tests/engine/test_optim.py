import pytest
import torch

from seglab.config import TrainConfig
from seglab.engine.optim import WARMUP_SHARE, build_optimizer, lr_factor
from seglab.models import build_model


def test_warmup_then_poly_and_cosine():
    config = TrainConfig(warmup_iters=10, schedule="poly")
    assert lr_factor(config, 0, 0.0) == pytest.approx(0.1)
    assert lr_factor(config, 9, 0.0) == pytest.approx(1.0)
    assert lr_factor(config, 50, 0.5) == pytest.approx(0.5**0.9)
    assert lr_factor(config, 100, 1.0) == 0
    cosine = TrainConfig(schedule="cosine")
    assert lr_factor(cosine, 50, 0.5) == pytest.approx(0.5)
    assert lr_factor(TrainConfig(schedule="constant"), 50, 0.7) == 1


def test_a_run_that_fills_its_budget_warms_up_over_a_tenth_of_it_at_most():
    # a 45 s budget fits about 12 steps of CamVid: 100 warm-up steps would last the whole run
    budget = TrainConfig(warmup_iters=100, time_budget=45.0)
    assert budget.fills_budget
    assert lr_factor(budget, 0, 0.0) == pytest.approx(0.01)  # by steps while they lead
    assert lr_factor(budget, 0, WARMUP_SHARE / 2) == pytest.approx(0.5)  # then by time
    assert lr_factor(budget, 2, WARMUP_SHARE) == pytest.approx((1 - WARMUP_SHARE) ** 0.9)
    assert lr_factor(budget, 10, 0.9) == pytest.approx(0.1**0.9)  # decaying, not warming up
    # a run with planned steps keeps the warm-up it was given, whatever the clock says
    planned = TrainConfig(warmup_iters=100, iterations=500, time_budget=45.0)
    assert lr_factor(planned, 0, 0.5) == pytest.approx(0.01)


def test_encoder_and_decoder_learning_rates():
    model = build_model("mobilenet_v2", 3, encoder_weights=None)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-3, encoder_lr=1e-4))
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["encoder"]["lr"] == 1e-4 and groups["decoder"]["lr"] == 1e-3
    n_params = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", momentum=0.9))
    assert type(sgd).__name__ == "SGD"


def test_the_ema_warm_up_forgets_the_random_start():
    from torch.optim.swa_utils import AveragedModel

    from seglab.engine.optim import ema_average, ema_decay

    model = torch.nn.Linear(4, 4)
    start = model.weight.detach().clone()
    average = AveragedModel(model, multi_avg_fn=ema_average(0.999), use_buffers=True)
    trained = torch.ones_like(start)
    with torch.no_grad():
        model.weight.copy_(trained)
    for _ in range(101):  # the first update copies, 100 average
        average.update_parameters(model)
    left = (average.module.weight - trained).abs().max() / (start - trained).abs().max()
    assert left < 0.005  # a constant 0.999 would keep 0.999**100 = 90% of the start
    assert ema_decay(0.999, 0) == 0.1 and ema_decay(0.999, 10**6) == 0.999
