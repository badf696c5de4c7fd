"""Quickstart: fit, predict, interval, update, and read what the memory learned.

Run with ``python examples/quickstart.py`` (about 40 seconds on 2 CPU cores, embedded model).
"""

from sktime.datasets import load_airline

from llmrnn import LLMRNNForecaster


def main() -> None:
    y = load_airline()
    y_train, y_new = y[:-2], y[-2:]

    f = LLMRNNForecaster(window=12, fit_steps=10)
    f.fit(y_train, fh=[1, 2, 3])  # runs the recurrence over the last 10 points of y_train
    print(f.predict())  # one LLM generation for all three horizons
    print(f.predict_interval(coverage=0.9))
    f.update(y_new)  # per new point: predict, feedback from the truth, memory rewrite
    print(f.memory_)
    columns = ["index", "prediction", "truth", "error", "prompt_tokens", "cached_tokens", "seconds"]
    print(f.get_trace()[columns])


if __name__ == "__main__":
    main()
