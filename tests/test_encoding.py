"""Numbers <-> text: scaling, bounded precision, exact parsing."""

from __future__ import annotations

import numpy as np
import pytest

from llmrnn.encoding import NumberFormat, ParseError, choose_scale
from llmrnn.tasks import ForecastTask


@pytest.mark.parametrize(
    ("values", "top", "scale"),
    [
        ([112, 622], 1000, 1.0),
        ([3e11, 1.2e12], 1000, 1e10),
        ([1e-9, 5e-9], 100, 1e-10),
        ([0, 0], 100, 1.0),
        ([-250, 40], 100, 10.0),
    ],
)
def test_choose_scale(values, top, scale):
    assert choose_scale(np.array(values, dtype=float), top) == pytest.approx(scale)


def test_render_parse_round_trip_is_exact():
    fmt = NumberFormat(scale=10.0, decimals=1, int_digits=4)
    text = fmt.render_many([123.0, -45.0, 6.0])
    assert text == "12.3, -4.5, 0.6"
    np.testing.assert_array_equal(fmt.parse(text, 3), [123.0, -45.0, 6.0])


def test_signed_format_and_errors():
    fmt = NumberFormat(scale=1.0, signed=True)
    assert fmt.render(2) == "+2.0" and fmt.render(-0.01) == "+0.0"
    with pytest.raises(ParseError, match="expected 2 numbers"):
        fmt.parse("+1.0", 2)


def test_forecast_task_change_answer_reproduces_last_value_when_neutral():
    y = np.array([10.0, 12.0, 11.0, 15.0])
    task = ForecastTask.from_series(y, answer="change", weight=1.0)
    assert task.scale == 0.1  # largest change 4 -> 40.0
    assert "Last value: 150.0" in task.render_observation(y)
    answer = task.parse("+0.0, +10.0", y, 2)
    np.testing.assert_allclose(answer, [0.0, 1.0])  # changes, in data units
    np.testing.assert_allclose(task.settle(answer, y, ())[0], [15.0, 16.0])
    fallback, rule = task.fallback(y, 3)
    np.testing.assert_allclose(task.settle(fallback, y, ())[0], [15.0, 15.0, 15.0])
    assert "last value" in rule
