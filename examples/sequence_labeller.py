"""Label every step of a stream with the hidden state of a Markov chain (softmax head).

A hidden chain moves between three states and rarely switches; each step we only see a noisy
reading whose mean depends on the state, and the model must output the state. A memoryless
classifier judges each reading alone; a recurrent classifier carries evidence from the previous
steps, as the Viterbi path of an HMM would. Accuracy is progressive (predict, then learn).

    python examples/sequence_labeller.py [--quick]
"""
import argparse
import random

from river import evaluate, metrics, naive_bayes

from streamrnn import LSTMClassifier

MEANS = {"low": -1.0, "mid": 0.0, "high": 1.0}
STAY = 0.95   # probability of keeping the state
NOISE = 0.8   # standard deviation of a reading


def chain(n, seed=0):
    rng = random.Random(seed)
    state = "mid"
    for _ in range(n):
        if rng.random() > STAY:
            state = rng.choice([s for s in MEANS if s != state])
        yield {"reading": MEANS[state] + rng.gauss(0.0, NOISE)}, state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a shorter stream")
    n = 1500 if ap.parse_args().quick else 5000

    lstm = evaluate.progressive_val_score(chain(n), LSTMClassifier(hidden_size=16, seed=1),
                                          metrics.Accuracy())
    memoryless = evaluate.progressive_val_score(chain(n), naive_bayes.GaussianNB(),
                                                metrics.Accuracy())
    print(f"memoryless GaussianNB    {memoryless}")
    print(f"LSTM sequence labeller   {lstm}")


if __name__ == "__main__":
    main()
