"""Learn a repeating binary sequence with RNN, LSTM and GRU classifiers side by side.

The pattern 0,0,1,0,1,1,1 repeats forever. Each step the model sees the current bit and must
predict the next one; the same bit is followed by 0 in some places and by 1 in others, so the
network has to remember where in the pattern it is. Accuracy is progressive (predict, then
learn) over the last 300 steps.

    python examples/binary_sequence.py [--quick]
"""
import argparse

from river import metrics, utils

from streamrnn import GRUClassifier, LSTMClassifier, RNNClassifier

PATTERN = [0, 0, 1, 0, 1, 1, 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a shorter stream")
    n = 1500 if ap.parse_args().quick else 4000

    models = {name: cls(hidden_size=16, seed=1) for name, cls in
              (("RNN", RNNClassifier), ("LSTM", LSTMClassifier), ("GRU", GRUClassifier))}
    accuracy = {name: utils.Rolling(metrics.Accuracy, window_size=300) for name in models}
    bits = [PATTERN[t % len(PATTERN)] for t in range(n + 1)]
    for t in range(n):
        x, y = {"bit": bits[t]}, bits[t + 1]
        for name, model in models.items():
            accuracy[name].update(y, model.predict_one(x))
            model.learn_one(x, y)

    for name in models:
        print(f"{name:5s} accuracy over the last 300 steps: {accuracy[name].get():.3f}")
    # The best any model that only looks at the current bit can do: the majority next bit.
    pairs = [(PATTERN[i], PATTERN[(i + 1) % len(PATTERN)]) for i in range(len(PATTERN))]
    best = sum(max(sum(1 for a, b in pairs if a == bit and b == nxt) for nxt in (0, 1))
               for bit in (0, 1)) / len(pairs)
    print(f"(a model that only looks at the current bit reaches at most {best:.3f})")


if __name__ == "__main__":
    main()
