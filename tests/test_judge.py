"""Tests of the MNIST judge in hw5_utils.py: its accuracy, the Fréchet distance, the digit scores, the cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hw5_utils

pytestmark = pytest.mark.usefixtures("one_thread")


def test_judge_classifies_held_out_digits(judge, mnist_grey):
    accuracy = hw5_utils.judge_accuracy(judge, mnist_grey.test_images, mnist_grey.test_labels)
    assert accuracy >= hw5_utils.JUDGE_MIN_ACCURACY == 0.98
    assert judge.test_accuracy == pytest.approx(accuracy)


def test_frechet_distance_matches_the_closed_form_in_two_dimensions():
    """In 2-D, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M = C_a C_b (eigenvalues >= 0): an independent route."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]]) + [1.0, -2.0]
    b = rng.normal(size=(400, 2)) @ np.array([[0.5, -0.3], [0.2, 1.5]]) + [0.5, 0.0]
    cov_a, cov_b = np.cov(a.T), np.cov(b.T)
    product = cov_a @ cov_b
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                - 2 * np.sqrt(np.trace(product) + 2 * np.sqrt(np.linalg.det(product))))
    assert hw5_utils.frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_a_shifted_copy_is_the_squared_shift():
    features = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 3, 16)
    shift = torch.linspace(-1, 1, 16)
    assert hw5_utils.frechet_distance(features, features) == pytest.approx(0, abs=1e-8)
    assert hw5_utils.frechet_distance(features, features + shift) == pytest.approx(shift.square().sum().item(),
                                                                                   rel=1e-6)


def test_judge_scores_real_digits_near_the_floor_and_noise_far_from_it(judge, mnist_grey):
    real = hw5_utils.judge_digits(judge, mnist_grey.train_images[-2000:], mnist_grey)
    assert real["n_samples"] == 2000
    assert real["frechet_distance"] < 2 * real["floor_frechet_distance"]
    assert real["classes_covered"] == 10 and real["mean_confidence"] > 0.9
    assert sum(real["class_histogram"]) == pytest.approx(1, abs=1e-3)
    as_images = hw5_utils.judge_digits(judge, mnist_grey.train_images[-2000:].view(-1, 1, 28, 28), mnist_grey)
    assert as_images["frechet_distance"] == pytest.approx(real["frechet_distance"])
    assert as_images["class_histogram"] == real["class_histogram"]
    noise = hw5_utils.judge_digits(judge, torch.rand(2000, 784, generator=torch.Generator().manual_seed(0)),
                                   mnist_grey)
    assert noise["frechet_distance"] > 50 * real["floor_frechet_distance"]
    assert noise["classes_covered"] <= 3


def test_judge_histogram_counts_the_digits_it_sees(judge, mnist_grey):
    threes = mnist_grey.test_images[mnist_grey.test_labels == 3]
    scores = hw5_utils.judge_digits(judge, threes, mnist_grey)
    assert scores["class_histogram"][3] > 0.9 and scores["classes_covered"] == 1


def test_load_judge_trains_once_then_reads_the_cache(tmp_path, mnist_grey, monkeypatch):
    trained = []

    def quick_train(data):  # a stand-in for the real recipe: an untrained judge, counted
        trained.append(1)
        return hw5_utils.MNISTJudge().eval()

    monkeypatch.setattr(hw5_utils, "train_judge", quick_train)
    first = hw5_utils.load_judge(mnist_grey, tmp_path)
    (cache,) = tmp_path.glob("mnist_judge_*.pt")
    second = hw5_utils.load_judge(mnist_grey, tmp_path)
    assert len(trained) == 1 and second.test_accuracy == first.test_accuracy
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    cache.write_bytes(b"corrupt")
    hw5_utils.load_judge(mnist_grey, tmp_path)
    assert len(trained) == 2 and torch.load(cache, weights_only=True)["version"] == hw5_utils.JUDGE_VERSION


def test_train_judge_learns_even_when_called_under_no_grad(mnist_grey):
    """The trainers score samples under torch.no_grad(), where the judge is trained the first time it is needed."""
    tiny = hw5_utils.MNIST(*(t[:256] for t in mnist_grey[:4]), "tiny")
    torch.manual_seed(0)
    untrained = hw5_utils.MNISTJudge()
    with torch.no_grad():
        judge = hw5_utils.train_judge(tiny, steps=3, batch_size=16)
    changed = [not torch.equal(a, b) for a, b in zip(untrained.state_dict().values(), judge.state_dict().values())]
    assert all(changed)  # every weight moved: trained from the same initialization
