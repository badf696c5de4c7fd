"""Sequential classification: will airline passengers go up or down next month?

Run with ``python examples/classify_updown.py`` (about a minute on 2 CPU cores, embedded model).
Rows are steps in time order: the classifier predicts each row, sees the true label, reflects
and rewrites its memory, then predicts the next rows with what it learned.
"""

from llmrnn import LLMRNNClassifier
from llmrnn.datasets import updown_task


def main() -> None:
    X, y = updown_task()
    X_train, y_train = X.iloc[-30:-6], y[-30:-6]
    X_test, y_test = X.iloc[-6:], y[-6:]

    clf = LLMRNNClassifier(fit_steps=4, memory_words=80)
    clf.fit(X_train, y_train)
    print("probabilities (down, up):")
    print(clf.predict_proba(X_test).round(3))
    print("accuracy on the next 6 months:", clf.score(X_test, y_test))
    clf.partial_fit(X_test[:2], y_test[:2])  # online update with two new labelled months
    print("memory:", clf.memory_, sep="\n")
    print("error-correction rate over the trace:", clf.error_correction_rate_)


if __name__ == "__main__":
    main()
