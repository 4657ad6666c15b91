import pytest

from seglab.errors import SeglabError
from seglab.models import ENCODERS, build_model
from seglab.models.complexity import count_parameters, forward_gflops, model_costs


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize(
    "classes, channels, height, width",
    # The models table's case; then an odd size and a grey input, where rounding and the first
    # convolution could part the two counts.
    [(12, 3, 360, 480), (7, 1, 97, 131)],
)
def test_model_costs_equal_the_counts_on_the_built_model(name, classes, channels, height, width):
    model = build_model(name, classes, in_channels=channels, encoder_weights=None)
    expected = (count_parameters(model), forward_gflops(model, height, width, channels))
    assert model_costs(name, classes, height, width, in_channels=channels) == expected


def test_model_costs_of_the_models_table():
    params, gflops = model_costs("mobilenet_v2", 12, 360, 480)
    assert params == 6_629_004
    assert gflops == pytest.approx(17.821008)


def test_model_costs_check_their_arguments():
    with pytest.raises(SeglabError, match="did you mean mobilenet_v2"):
        model_costs("mobilenet_v22", 12, 64, 64)
    with pytest.raises(SeglabError, match="num_classes and in_channels must be >= 1"):
        model_costs("mobilenet_v2", 0, 64, 64)


def test_cost_figures_scale_with_the_input():
    model = build_model("mobilenet_v2", num_classes=12, encoder_weights=None)
    small, large = forward_gflops(model, 180, 240), forward_gflops(model, 360, 480)
    assert large == pytest.approx(4 * small, rel=0.02)
    vgg = build_model("vgg19", num_classes=12, encoder_weights=None)
    assert forward_gflops(vgg, 360, 480) > 5 * large
    assert count_parameters(vgg) > 3 * count_parameters(model)
