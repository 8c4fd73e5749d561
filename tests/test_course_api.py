"""The course's own API, end to end: hw5_utils offers the course's helpers with the course's results, and the three
scripts work the way the course's starter files call them (Fall 2022: VAE(args), ScoreMatching(); Spring 2024:
GANDataset, GAN(), ScoreNet, create_samples). Each against an independent reference: the raw MNIST file read
here, the course's own loops, hand computations.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import drawn
import hw5_diffusion
import hw5_gan
import hw5_utils
import hw5_vae
from hw5_utils import UserError


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty working folder, as a student's script does in theirs."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def raw_digits(mnist_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 10000 digits of the shared file, training part first, and their labels (read here with numpy)."""
    with np.load(mnist_path) as raw:
        return (np.concatenate([raw["x_train"], raw["x_test"]]).reshape(-1, 784),
                np.concatenate([raw["y_train"], raw["y_test"]]))


# ----------------------------------------------------------------------------------------------------
# hw5_utils: the course's helpers


def test_load_mnist_gives_the_course_five_tuple_offline(mnist_path):
    """N_data, train_images (10000, 784) rounded float32, one-hot labels (10000, 10), float32 for training and int64
    for the test set; offline, the shared file's 10000 digits stand in for the training images."""
    n_data, train_images, train_labels, test_images, test_labels = hw5_utils.load_mnist()
    images, labels = raw_digits(mnist_path)
    assert n_data == 10000
    for x, y, label_type in ((train_images, train_labels, torch.float32), (test_images, test_labels, torch.int64)):
        assert x.shape == (10000, 784) and x.dtype == torch.float32
        assert y.shape == (10000, 10) and y.dtype == label_type
        np.testing.assert_array_equal(x.numpy(), np.round(images / 255.0))
        assert bool((y.sum(1) == 1).all()) and set(y.unique().tolist()) == {0, 1}
        np.testing.assert_array_equal(y.argmax(1).numpy(), labels)


def course_load_mnist(mnist):
    """The course's load_mnist as course-api.md gives it, written out with numpy: every image flattened and divided
    by 255, labels one-hot as int64; N_data counted before the first 10000 training images are taken, rounded;
    only the training labels made float."""
    train_images, train_labels, test_images, test_labels = mnist()
    flat = lambda x: x.reshape(x.shape[0], -1) / 255.0  # noqa: E731
    one_hot = lambda y: np.array(y[:, None] == np.arange(10)[None, :], dtype=np.int64)  # noqa: E731
    n_data = flat(train_images).shape[0]
    return (n_data, torch.from_numpy(np.round(flat(train_images)[:10000])).float(),
            torch.from_numpy(one_hot(train_labels)[:10000]).float(),
            torch.from_numpy(np.round(flat(test_images)[:10000])).float(), torch.from_numpy(one_hot(test_labels)[:10000]))


def test_load_mnist_counts_the_whole_training_set_and_keeps_its_first_10000(monkeypatch):
    """With 12000 training and 10500 test digits from mnist(), N_data is 12000 and the tensors are the course's (the
    first 10000 of each set), value and type."""
    rng = np.random.default_rng(0)
    digits = (rng.integers(0, 256, (12000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12000, dtype=np.uint8),
              rng.integers(0, 256, (10500, 28, 28), dtype=np.uint8), rng.integers(0, 10, 10500, dtype=np.uint8))
    monkeypatch.setattr(hw5_utils, "mnist", lambda: digits)
    ours, course = hw5_utils.load_mnist(), course_load_mnist(lambda: digits)
    assert ours[0] == course[0] == 12000 and isinstance(ours[0], int)
    for mine, theirs in zip(ours[1:], course[1:]):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert torch.equal(mine, theirs)
    assert ours[1][0, 0].item() == float(digits[0][0, 0, 0] >= 128)  # rounded at 127.5 / 255, a hand check


def test_mnist_reads_the_course_files_from_data(in_tmp, mnist_path, monkeypatch):
    """Without $HW5_MNIST, mnist() reads ./data/*.gz, the course's layout (here the official test files, copied)."""
    monkeypatch.delenv(hw5_utils.MNIST_ENV)
    (in_tmp / "data").mkdir()
    official = mnist_path.parent / "MNIST" / "raw"
    for kind in ("images-idx3", "labels-idx1"):
        for prefix in ("train", "t10k"):
            (in_tmp / "data" / f"{prefix}-{kind}-ubyte.gz").write_bytes((official / f"t10k-{kind}-ubyte.gz").read_bytes())
    train_images, train_labels, test_images, test_labels = hw5_utils.mnist()
    assert train_images.shape == (10000, 28, 28) and train_images.dtype == np.uint8
    images, labels = raw_digits(mnist_path)  # the shared file holds the same 10000 digits, in another order
    assert sorted(map(int, train_labels)) == sorted(map(int, labels))
    assert int(train_images.astype(np.int64).sum()) == int(images.astype(np.int64).sum())


def read_idx(path: Path) -> np.ndarray:
    """An IDX file, the MNIST format (magic 0x0803 images / 0x0801 labels, big-endian sizes), read by hand."""
    data = gzip.open(path).read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], np.uint8).reshape(shape)


def test_download_writes_the_local_copy_offline_and_keeps_what_is_there(in_tmp, mnist_path):
    images, labels = raw_digits(mnist_path)
    for filename, expected in (("train-images-idx3-ubyte.gz", images.reshape(-1, 28, 28)),
                               ("train-labels-idx1-ubyte.gz", labels)):
        hw5_utils.download(hw5_utils.BASE_URL + filename, filename)
        np.testing.assert_array_equal(read_idx(in_tmp / "data" / filename), expected)
    (in_tmp / "data" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"mine")
    hw5_utils.download(hw5_utils.BASE_URL + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert (in_tmp / "data" / "t10k-labels-idx1-ubyte.gz").read_bytes() == b"mine"


def test_download_without_network_or_local_copy_says_where_to_put_the_file(in_tmp, monkeypatch):
    monkeypatch.setattr(hw5_utils, "offline_mnist", lambda: None)
    with pytest.raises(UserError, match=r"cannot download train-images-idx3-ubyte.gz .*put the file in .*data") as error:
        hw5_utils.download(hw5_utils.BASE_URL + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz")
    assert "\n" not in str(error.value)
    assert not (in_tmp / "data" / "train-images-idx3-ubyte.gz").exists()


def course_concat_images(images, row, col, padding=3):
    """The course starter's concat_images, verbatim in behaviour: image i + j*row goes to row i, column j."""
    result = np.zeros((28 * row + (row - 1) * padding, 28 * col + (col - 1) * padding))
    for i in range(row):
        for j in range(col):
            top, left = i * 28 + i * padding, j * 28 + j * padding
            result[top:top + 28, left:left + 28] = np.reshape(images[i + j * row], (28, 28))
    return result


@pytest.mark.parametrize("row, col, padding", [(10, 2, 3), (3, 11, 0), (1, 1, 5)])
def test_concat_images_matches_the_course_layout(row, col, padding):
    images = np.random.default_rng(0).random((row * col, 784))
    np.testing.assert_allclose(hw5_utils.concat_images(images, row, col, padding),
                               course_concat_images(images, row, col, padding), atol=1e-6)


def test_concat_images_leaves_out_images_past_the_grid():
    """33 interpolation images in a 3 x 10 grid, as students call it: the first 30, the course's way."""
    images = np.random.default_rng(1).random((33, 784))
    grid = hw5_utils.concat_images(images, 3, 10)
    assert isinstance(grid, np.ndarray) and grid.shape == (3 * 28 + 2 * 3, 10 * 28 + 9 * 3)
    np.testing.assert_allclose(grid, course_concat_images(images, 3, 10), atol=1e-6)


def test_concat_images_takes_tensors_arrays_and_lists():
    """A (N, 28, 28) tensor with gradients, a list of (784,) tensors, a list of (28, 28) arrays: one grid. Checked by
    hand on constant images: image k holds the value k + 1, the gaps 0."""
    images = torch.arange(1.0, 5.0)[:, None, None].expand(4, 28, 28).clone().requires_grad_()
    expected = np.zeros((28 + 1 + 28, 28 + 1 + 28))
    expected[:28, :28], expected[29:, :28], expected[:28, 29:], expected[29:, 29:] = 1, 2, 3, 4  # column by column
    for given in (images, [image.reshape(784) for image in images], [image.detach().numpy() for image in images]):
        np.testing.assert_array_equal(hw5_utils.concat_images(given, 2, 2, padding=1), expected)


def test_concat_images_with_fewer_images_than_the_grid_is_an_error():
    with pytest.raises(ValueError, match="29 images for a 3 x 10 grid"):
        hw5_utils.concat_images(np.zeros((29, 784)), 3, 10)


def test_gan_dataset_as_the_gan_starter_builds_it(in_tmp, mnist_path):
    """GANDataset of ./data/train-images-idx3-ubyte.gz with the starter's Normalize((0,), (255,)): images in [0, 1]."""
    from torchvision import transforms

    filename = "train-images-idx3-ubyte.gz"
    hw5_utils.download(hw5_utils.BASE_URL + filename, filename)
    data = hw5_utils.GANDataset(f"./data/{filename}", torch.device("cpu"),
                                transform=transforms.Compose([transforms.Normalize((0.0,), (255.0,))]))
    images, _ = raw_digits(mnist_path)
    assert len(data) == 10000 and data[3].shape == (1, 28, 28) and data[3].dtype == torch.float32
    np.testing.assert_allclose(data[3].numpy().reshape(784), images[3] / 255.0, rtol=1e-6)
    raw = hw5_utils.GANDataset(f"./data/{filename}", "cpu")
    assert raw[3].max().item() == images[3].max()  # 0-255 without a transform


def test_create_samples_is_the_cs446_text_at_the_course_scale_and_orientation():
    """1169 points: x in [-2.14, 2.15], y in [-0.49, 0.51] without jitter (mirrored or upside down, the ends would
    swap); the jitter is N(0, noise^2)."""
    points = hw5_utils.create_samples(noise=0.0)
    assert points.shape == (1169, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points.min(0), [-2.136, -0.491], atol=0.004)
    np.testing.assert_allclose(points.max(0), [2.150, 0.509], atol=0.004)
    np.testing.assert_allclose(points.mean(0), [0, 0], atol=1e-5)
    np.random.seed(0)
    jitter = hw5_utils.create_samples() - points
    assert jitter.std() == pytest.approx(0.01, rel=0.1) and abs(jitter.mean()) < 1e-3
    on_the_left = points[points[:, 0] < -1.6]  # the C: open to the right, so its middle row has pixels only on the left
    middle = on_the_left[np.abs(on_the_left[:, 1]) < 0.05]
    assert middle[:, 0].max() < -1.7


def test_generate_sigmas_is_geometric_from_begin_to_end():
    sigmas = hw5_utils.generate_sigmas(0.3, 0.01, 10)
    assert isinstance(sigmas, np.ndarray) and sigmas.shape == (10,)
    assert sigmas[0] == pytest.approx(0.3) and sigmas[-1] == pytest.approx(0.01)
    np.testing.assert_allclose(sigmas[1:] / sigmas[:-1], (0.01 / 0.3) ** (1 / 9))


def test_plot_score_draws_the_score_at_sigma_0_1_over_the_data():
    """Arrows in the directions of scorenet(grid, 0.1) on [-2.5, 2.5] x [-0.6, 0.6], over a scatter of the data."""
    class Rotation(nn.Module):  # a score whose direction depends on x and σ: (−x2, x1) σ
        def forward(self, x, sigma):
            return torch.stack([-x[:, 1], x[:, 0]], 1) * sigma

    data = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    with drawn.capture() as drawings:
        hw5_utils.plot_score(Rotation(), data)
    (drawing,) = drawings
    (arrows,), (scatter,) = drawing.arrows, drawing.scatters
    np.testing.assert_allclose(scatter.points, data, rtol=1e-6)
    assert arrows.points.min(0) == pytest.approx([-2.5, -0.6]) and arrows.points.max(0) == pytest.approx([2.5, 0.6])
    expected = np.stack([-arrows.points[:, 1], arrows.points[:, 0]], 1)
    cosine = (expected * arrows.vectors).sum(1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(arrows.vectors,
                                                                                                       axis=1)
    assert cosine.min() > 0.999


# ----------------------------------------------------------------------------------------------------
# hw5_vae.py: the Fall-2022 template, as its main() runs it


def test_vae_is_built_from_parse_args_and_keeps_the_course_data(mnist_path):
    args = hw5_vae.parse_args([])
    assert vars(args) == dict(e_path="./e_params.pkl", d_path="./d_params.pkl", hidden_units=500, latent_dimension=2,
                              data_dimension=784, resume_training=False, seed=1234, num_epoches=200, batch_size=100)
    vae = hw5_vae.VAE(args)
    images, labels = raw_digits(mnist_path)
    assert vae.train_images.shape == (10000, 784) and vae.train_labels.shape == (10000, 10)
    np.testing.assert_array_equal(vae.train_labels.argmax(1).numpy(), labels)
    assert (vae.latent_dimension, vae.num_epoches, vae.batch_size) == (2, 200, 100)
    assert vae.eval() is vae and not vae.training  # nn.Module.eval() still works beside the course's train()


def test_vae_course_main_trains_saves_and_draws_in_the_working_folder(in_tmp, monkeypatch):
    """main() with the starter's options: train (here 1 epoch), save e_path and d_path, draw the three figures; then
    VAE(args) with --resume_training loads the saved weights."""
    monkeypatch.setattr(sys, "argv", ["hw5_vae.py", "--num_epoches", "1", "--e_path", "e.pkl", "--d_path", "d.pkl"])
    with drawn.capture() as drawings:
        hw5_vae.main()
    assert {"e.pkl", "d.pkl", "data_space.png", "latent_space.png", "interpolation.png"} <= set(os.listdir(in_tmp))
    assert len(drawings) == 3
    resumed = hw5_vae.VAE(hw5_vae.parse_args(["--resume_training", "--e_path", "e.pkl", "--d_path", "d.pkl"]))
    saved = torch.load("d.pkl", weights_only=True)
    for name, value in resumed.decoder.state_dict().items():
        torch.testing.assert_close(value, saved[name])
    with torch.no_grad():  # one epoch already takes the ELBO from -543 to about -200
        x = resumed.train_images[:500]
        mu, sigma_square = resumed.encoder(x)
        z = resumed.sample_z(mu, sigma_square)
        assert resumed.elbo_loss(z, mu, sigma_square, x, resumed.decoder(z)).item() > -250


# ----------------------------------------------------------------------------------------------------
# hw5_diffusion.py: both editions' templates


def test_fall_2022_score_matching_as_its_main_uses_it(in_tmp):
    """ScoreMatching(), generate_noise_levels on the class, initial_random_samples() ~ randn(2000, 2) / 3 + 0.5,
    train(data, noise_levels, learning_rate, iterations), plot_score() with no arguments, then sampling."""
    torch.manual_seed(0)
    sm = hw5_diffusion.ScoreMatching()
    start = sm.initial_random_samples()
    assert start.shape == (2000, 2)
    assert start.mean(0).tolist() == pytest.approx([0.5, 0.5], abs=0.03)
    assert start.std(0).tolist() == pytest.approx([1 / 3, 1 / 3], rel=0.05)
    levels = hw5_diffusion.ScoreMatching.generate_noise_levels(0.5, 0.01, 10)
    data = np.random.default_rng(0).uniform(0.3, 0.7, size=(500, 2)).astype(np.float32)  # in the unit square
    losses = sm.train(data, levels, 5e-3, 300)
    assert len(losses) == 300 and np.mean(losses[-30:]) < np.mean(losses[:30])
    with drawn.capture() as drawings:
        sm.plot_score()
    assert (in_tmp / "score_field.png").is_file() and drawings[0].arrows and drawings[0].scatters
    samples = sm.langevin_dynamics_sample(sm.initial_random_samples(), levels, 20, 0.5 * 0.01 ** 2)
    assert samples.shape == (2000, 2)
    inside = ((samples > 0.25) & (samples < 0.75)).all(1).float().mean().item()
    assert inside > 0.9  # the square [0.3, 0.7]^2, give or take the last level's noise


def test_spring_2024_api_as_its_main_uses_it(in_tmp):
    """ScoreNet(), compute_denoising_loss and langevin_dynamics_sample on create_samples() with generate_sigmas'
    numpy levels, plot_score from hw5_utils: the shapes the handout gives."""
    torch.manual_seed(0)
    np.random.seed(0)
    data = torch.tensor(hw5_utils.create_samples())
    sigmas = hw5_utils.generate_sigmas(0.3, 0.01, 10)
    scorenet = hw5_diffusion.ScoreNet()
    assert len([m for m in scorenet.modules() if isinstance(m, nn.Linear)]) == 8
    optimizer = torch.optim.Adam(scorenet.parameters(), lr=1e-3)
    for _ in range(20):
        loss = hw5_diffusion.compute_denoising_loss(scorenet, data, sigmas)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.dim() == 0 and math.isfinite(loss.item())
    with drawn.capture() as drawings:
        hw5_utils.plot_score(scorenet, data)
    assert drawings[0].arrows
    samples = hw5_diffusion.langevin_dynamics_sample(scorenet, 7, sigmas)
    trajectory = hw5_diffusion.langevin_dynamics_sample(scorenet, 7, sigmas, iterations=5, return_traj=True)
    assert samples.shape == (7, 2) and trajectory.shape == (7, 50, 2)


class GaussianScore(nn.Module):
    """The exact score of N(0, I) blurred by σ, -x / (1 + σ²): a network without parameters."""

    def forward(self, x, sigma):
        return -x / (1 + sigma ** 2)


@pytest.mark.parametrize("score", [GaussianScore(), lambda x, sigma: -x / (1 + sigma ** 2)], ids=["module", "function"])
def test_spring_2024_sampler_takes_an_analytic_score(score):
    """A score without parameters (an nn.Module or a plain function) samples on torch's default device. Each step
    x <- (1 - α / (1 + σ²)) x + √(2α) z maps the variance v to (1 - α / (1 + σ²))² v + 2α, from v = 1 (x_0 ~ N(0, I)),
    with α = ε σ_i² / σ_L²: computed here by hand for σ = 2, 1, T = 10, ε = 0.05."""
    variance = 1.0
    for sigma in (2.0, 1.0):
        alpha = 0.05 * sigma ** 2
        for _ in range(10):
            variance = (1 - alpha / (1 + sigma ** 2)) ** 2 * variance + 2 * alpha
    torch.manual_seed(0)
    samples = hw5_diffusion.langevin_dynamics_sample(score, 20000, np.array([2.0, 1.0]), iterations=10, eps=0.05)
    assert samples.shape == (20000, 2) and samples.device == torch.get_default_device()
    assert samples.var(0).tolist() == pytest.approx([variance, variance], rel=0.05)
    trajectory = hw5_diffusion.langevin_dynamics_sample(score, 5, [2.0, 1.0], iterations=3, return_traj=True)
    assert trajectory.shape == (5, 6, 2)


def test_both_editions_share_one_sampler():
    """Fall 2022's x + α/2 s + √α z with α = lr σ²/σ_L² is Spring 2024's x + α s + √(2α) z with ε = lr/2: from the same
    start and noise, the same samples."""
    class Pull(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x, sigma):
            return -x / (1 + sigma ** 2)

    levels = hw5_utils.generate_sigmas(1.0, 0.1, 4)
    torch.manual_seed(3)
    spring = hw5_diffusion.langevin_dynamics_sample(Pull(), 100, levels, iterations=7, eps=0.01)
    torch.manual_seed(3)
    start = torch.randn(100, 2)
    fall = hw5_diffusion.ScoreMatching(Pull()).langevin_dynamics_sample(start, torch.tensor(levels, dtype=torch.float32),
                                                                        7, 0.02)
    torch.testing.assert_close(fall, spring)


# ----------------------------------------------------------------------------------------------------
# hw5_gan.py: the Spring-2024 template


def test_gan_training_calls_the_course_losses(monkeypatch, mnist_grey):
    """The training loop computes its losses through _get_loss_d(batch_size, batch_data, z) and
    _get_loss_g(batch_size, z): a student comparing sees where theirs would be used."""
    calls = []
    for name in ("_get_loss_d", "_get_loss_g"):
        original = getattr(hw5_gan.ConfiguredGAN, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, args[0]))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(hw5_gan.ConfiguredGAN, name, counted)
    gan = hw5_gan.ConfiguredGAN(device="cpu")
    optimizers = hw5_gan.make_optimizers(gan, 2e-4)
    cfg = hw5_gan.Config(batch_size=64, iter_d=2, iter_g=1)
    hw5_gan.train_epoch(gan, *optimizers, mnist_grey.train_images[:256].view(-1, 1, 28, 28), cfg)
    assert calls == [("_get_loss_d", 64), ("_get_loss_d", 64), ("_get_loss_g", 64)] * 4


def test_gan_course_main_trains_from_the_working_folder(in_tmp, monkeypatch):
    """The course's main(): GAN() (seeded 2, the course's networks), its own train() reading ./data through
    download and GANDataset (offline: the local MNIST copy), the grid test_0.png, then both state dicts saved."""
    monkeypatch.setattr(sys, "argv", ["hw5_gan.py", "--n_epochs", "1", "--batch_size", "500"])
    hw5_gan.main()
    assert {"test_0.png", "gen.pt", "disc.pt"} <= set(os.listdir(in_tmp))
    assert (in_tmp / "data" / "train-images-idx3-ubyte.gz").is_file()
    gen = hw5_gan.GNet(64)
    gen.load_state_dict(torch.load(in_tmp / "gen.pt", weights_only=True))
    untrained = hw5_gan.GAN().gen.cpu()  # seeded as main's was
    assert not torch.equal(gen.fc.weight, untrained.fc.weight)  # it trained
