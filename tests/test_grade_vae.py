"""The graded tests of the `vae` assignment (Fall 2022, question 2): a student's hw5_vae.py, built the course's way.

Each test is a probe, which calls the student's file and returns data, and a verdict on that data (tests/
grading.py). The static methods of 2.b are called on the class, as the course's template declares them; the rows
that need a model build `VAE(args)` as the course's main() does, args being the file's own `parse_args()` defaults
(or the course's, if it has none that work), so the student's `__init__` loads `load_mnist()` from our hw5_utils. A
constructor that needs what Gradescope lacks still builds (`course_vae`): the course's MNIST files, downloaded by any
URL or read from ./data, come from the grader's offline copy, and a load of the weights files no submission has is
skipped; the student is told once. Every function is checked against an independent reference: torch.distributions,
a closed form, the network recomputed by hand; never against itself. The calls pass batches of the course's 100
images. The figures of 2.e are graded by what the student's `visualize_*()` DRAW (tests/drawn.py), called with no
arguments, on a model the test trains with its own correct ELBO, so that a mistake in 2.b-2.d costs its own rows and
not the figures' too.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
import shutil
import socket
import sys
import urllib.request
import urllib.response
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal

import drawn
import hw5_utils
from grading import NOTE_TEXTS, as_array, as_number, manual_seed, shared_folder, tell

# The course's parse_args() defaults, for a file whose own parse_args() is missing or fails.
COURSE_ARGS = dict(e_path="./e_params.pkl", d_path="./d_params.pkl", hidden_units=500, latent_dimension=2,
                   data_dimension=784, resume_training=False, seed=1234, num_epoches=200, batch_size=100)
BATCH = 100  # the course's batch_size: the students' functions are called with batches of this size


# ----------------------------------------------------------------------------------------------------
# In the worker: the student's VAE as the course's main() builds it


def course_args(module) -> argparse.Namespace:
    """The namespace the course's main() passes to VAE(args): the file's parse_args() with the script alone on the
    command line (parse_known_args()'s pair gives its first), over the course's defaults; never resuming."""
    argv, sys.argv = sys.argv, [str(getattr(module, "__file__", "hw5_vae.py"))]
    try:
        parsed = module.parse_args()
        parsed = vars(parsed[0] if isinstance(parsed, tuple) else parsed)
    except BaseException:  # SystemExit from argparse, no parse_args, ...
        parsed = {}
    finally:
        sys.argv = argv
    return argparse.Namespace(**{**COURSE_ARGS, **parsed, "resume_training": False})


class SkippedWeights(dict):
    """What torch.load gives for a weights file the course's code saves but no submission has: load_state_dict
    leaves the model as it is."""


NOTE_TEXTS.update({
    "mnist served": "VAE(args) downloads {url}, which does not answer: the grader gave it its own copy of the file. "
                    "Import load_mnist from hw5_utils rather than keeping a copy of the course's download in your file.",
    "weights skipped": "VAE(args) loads {e_path} and {d_path} whatever args.resume_training says, and no submission "
                       "has them: the grader skipped the load. Load saved weights only when args.resume_training is "
                       "set.",
    "constructor failed": "VAE(args) raised {error}, so every row that needs a model lost its points: VAE(args) must "
                          "build with the course's parse_args() defaults and no file but hw5_utils' data.",
})


@contextlib.contextmanager
def gradescope_stand_ins(args: argparse.Namespace, mnist: Path):
    """While the student's VAE(args) is built: ./data holds the course's four MNIST files (`mnist`, written from the
    grader's offline copy); a urllib download of any of them that fails (the course's host is gone) is served from
    there; and a torch.load of args.e_path or args.d_path, which no submission has, is skipped. What was done is
    told to the student."""
    data = Path("data")
    data.mkdir(exist_ok=True)
    for file in mnist.iterdir():
        if not (data / file.name).exists():
            (data / file.name).symlink_to(file)
    weights = {Path(args.e_path).name, Path(args.d_path).name}
    load, load_state_dict = torch.load, nn.Module.load_state_dict
    urlretrieve, urlopen, timeout = urllib.request.urlretrieve, urllib.request.urlopen, socket.getdefaulttimeout()

    def fetched(real, url, *rest, **options) -> tuple:
        """(real(url, ...), None) if the network gives it, else for an MNIST file (None, the grader's copy)."""
        address = str(getattr(url, "full_url", url))
        local = mnist / address.rsplit("/", 1)[-1]
        try:
            return real(url, *rest, **options), None
        except OSError:  # URLError, HTTPError, a timeout
            if local.name not in hw5_utils.MNIST_FILES:
                raise
            tell("mnist served", url=address)
            return None, local

    def retrieve(url, filename=None, *rest, **options):
        found, local = fetched(urlretrieve, url, filename, *rest, **options)
        if local is None:
            return found
        shutil.copyfile(local, filename or local.name)
        return filename or local.name, None

    def open_url(url, *rest, **options):
        found, local = fetched(urlopen, url, *rest, **options)
        return found if local is None else urllib.response.addinfourl(open(local, "rb"), {}, local.name, 200)

    def skipping_load(f, *rest, **options):
        if isinstance(f, (str, os.PathLike)) and Path(f).name in weights and not Path(f).exists():
            tell("weights skipped", e_path=args.e_path, d_path=args.d_path)
            return SkippedWeights()
        return load(f, *rest, **options)

    def keeping_skipped(self, state_dict, *rest, **options):
        return None if isinstance(state_dict, SkippedWeights) else load_state_dict(self, state_dict, *rest, **options)

    urllib.request.urlretrieve, urllib.request.urlopen, torch.load = retrieve, open_url, skipping_load
    nn.Module.load_state_dict = keeping_skipped
    socket.setdefaulttimeout(10)  # a host that never answers costs 10 s, not the test
    try:
        yield
    finally:
        urllib.request.urlretrieve, urllib.request.urlopen, torch.load = urlretrieve, urlopen, load
        nn.Module.load_state_dict = load_state_dict
        socket.setdefaulttimeout(timeout)


def course_vae(hw5_vae, mnist: Path):
    """The student's VAE(args), built as the course's main() builds it, with the stand-ins for what Gradescope lacks
    (`gradescope_stand_ins`)."""
    args = course_args(hw5_vae)
    try:
        with gradescope_stand_ins(args, mnist):
            return hw5_vae.VAE(args)
    except Exception as error:
        tell("constructor failed", error=f"{type(error).__name__} ({error})")
        raise


def vae_function(hw5_vae, name: str, mnist: Path):
    """The student's VAE.<name>: the class's own, where it is a static method as the course's template declares it
    (no VAE needed), else the method of a VAE(args)."""
    if isinstance(inspect.getattr_static(hw5_vae.VAE, name, None), staticmethod):
        return getattr(hw5_vae.VAE, name)
    return getattr(course_vae(hw5_vae, mnist), name)


@pytest.fixture(scope="module")
def mnist(request) -> Path:
    """The course's four MNIST files (what its code reads from ./data), written once from the grader's offline copy
    into a folder the workers can read."""
    folder = shared_folder(request, "mnist")
    arrays = hw5_utils.course_arrays(Path(os.environ[hw5_utils.MNIST_ENV]))
    for name, array in zip(hw5_utils.MNIST_FILES, arrays):
        hw5_utils.write_idx(array, folder / name)
        (folder / name).chmod(0o644)
    return folder


def gaussian_logpdf(z: torch.Tensor, mu: torch.Tensor, sigma_square: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag sigma_square) by torch.distributions; mu, sigma_square broadcast against z (B, L) -> (B,)."""
    mu, sigma_square = torch.broadcast_tensors(mu, sigma_square)
    mu, sigma_square = mu.expand_as(z), sigma_square.expand_as(z)
    return Independent(Normal(mu, sigma_square.sqrt()), 1).log_prob(z)


def bernoulli_logpdf(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; p) summed over pixels, by torch.distributions: x, p (B, 784) -> (B,)."""
    return Bernoulli(probs=p.clamp(1e-6, 1 - 1e-6)).log_prob(x).sum(1)


def with_reference_densities(vae):
    """The student's VAE with our log-densities in place of theirs (elbo_loss calls them through self), so that a
    test of elbo_loss grades elbo_loss alone."""
    vae.logpdf_diagonal_gaussian = gaussian_logpdf
    vae.logpdf_bernoulli = bernoulli_logpdf
    return vae


def reference_elbo(vae, x: torch.Tensor, samples: int = 1) -> torch.Tensor:
    """Monte Carlo ELBO of each binary image x (B, 784) with the student's encoder and decoder and
    torch.distributions, averaged over `samples` draws: (B,); differentiable (reparameterized)."""
    mu, sigma_square = vae.encoder(x)
    q = Independent(Normal(mu, sigma_square.sqrt()), 1)
    z = q.rsample((samples,))  # (S, B, L)
    log_px = bernoulli_logpdf(x.repeat(samples, 1), vae.decoder(z.flatten(0, 1))).view(samples, -1)
    log_pz = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
    return (log_px + log_pz - q.log_prob(z)).mean(0)


def students_elbo(vae, x: torch.Tensor) -> torch.Tensor:
    """The course's training step's objective: the student's encoder, sample_z, decoder and elbo_loss."""
    mu, sigma_square = vae.encoder(x)
    z = vae.sample_z(mu, sigma_square)
    return vae.elbo_loss(z, mu, sigma_square, x, vae.decoder(z))


def train_briefly(vae, images: torch.Tensor, objective, epochs: int = 6, seed: int = 0) -> None:
    """The course's training loop over binary images (N, 784): Adam on -objective(vae, batch), batches of 100."""
    manual_seed(seed)
    optimizer = torch.optim.Adam(list(vae.encoder.parameters()) + list(vae.decoder.parameters()), lr=1e-3)
    for _ in range(epochs):
        for start in range(0, len(images), BATCH):
            loss = -torch.as_tensor(objective(vae, images[start:start + BATCH])).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def in_batches(function, *inputs: torch.Tensor) -> np.ndarray:
    """function(*batch) over BATCH rows of the inputs at a time, the results stacked (N, ...)."""
    return np.concatenate([as_array(function(*(x[start:start + BATCH] for x in inputs)))
                           for start in range(0, len(inputs[0]), BATCH)])


@pytest.fixture(scope="module")
def held_out_digits(mnist_path) -> torch.Tensor:
    """2000 rounded real digits that no training below sees (the last 2000 of load_mnist()'s 10000 offline)."""
    return hw5_utils.read_mnist(mnist_path, train_size=1, binarize="round").test_images


# ----------------------------------------------------------------------------------------------------
# 2.a  The decoder


def decoder_probe(hw5_vae, z: torch.Tensor) -> dict:
    manual_seed(0)
    decoder = hw5_vae.Decoder(2, 500, 784)
    layers = [{"weight": m.weight, "bias": m.bias} for m in decoder.modules() if isinstance(m, nn.Linear)]
    return {"layers": layers, "p": decoder(z)}


def test_2a_decoder(probe):
    """Decoder: Linear(latent, 500) -> tanh -> Linear(500, 784) -> sigmoid; output (B, 784) in (0, 1)."""
    z = torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(0))
    found = probe(decoder_probe, z)
    layers = {layer["weight"].shape: layer for layer in found["layers"]}
    assert len(found["layers"]) == 2 and set(layers) == {(500, 2), (784, 500)}, (
        f"the decoder has linear layers of weights {[layer['weight'].shape for layer in found['layers']]}: the "
        f"handout's has two, 2 -> 500 and 500 -> 784")
    first, second = ((torch.from_numpy(layers[shape]["weight"]), torch.from_numpy(layers[shape]["bias"]))
                     for shape in ((500, 2), (784, 500)))
    expected = torch.sigmoid(torch.tanh(z @ first[0].T + first[1]) @ second[0].T + second[1])
    p = torch.from_numpy(found["p"])
    assert p.shape == (BATCH, 784), f"decoder(z) has shape {tuple(p.shape)}, expected ({BATCH}, 784)"
    torch.testing.assert_close(p, expected, msg="decoder(z) is not sigmoid(fc2(tanh(fc1(z))))")


# ----------------------------------------------------------------------------------------------------
# 2.b  Densities and samplers


def function_probe(hw5_vae, mnist: Path, name: str, *inputs, seed: int = 0) -> np.ndarray:
    """VAE.<name>(*inputs) (vae_function), the inputs in batches of BATCH."""
    function = vae_function(hw5_vae, name, mnist)
    manual_seed(seed)
    return in_batches(function, *inputs)


def test_2b_i_logpdf_diagonal_gaussian(probe, mnist):
    """log N(z; mu, diag sigma_square), one value per row (B,), against torch.distributions (Normal, and
    MultivariateNormal with a diagonal covariance)."""
    generator = torch.Generator().manual_seed(1)
    z, mu = torch.randn(BATCH, 2, generator=generator), torch.randn(BATCH, 2, generator=generator)
    sigma_square = torch.rand(BATCH, 2, generator=generator) + 0.1
    logprob = torch.from_numpy(probe(function_probe, mnist, "logpdf_diagonal_gaussian", z, mu, sigma_square)).float()
    assert logprob.shape == (BATCH,), f"shape {tuple(logprob.shape)}: one log-density per row, (batch_size,)"
    torch.testing.assert_close(logprob, Independent(Normal(mu, sigma_square.sqrt()), 1).log_prob(z),
                               msg="log N(z; mu, diag sigma_square) differs from torch.distributions'")
    # The same density as a full-covariance Gaussian with a diagonal covariance matrix.
    torch.testing.assert_close(logprob[0], MultivariateNormal(mu[0], torch.diag(sigma_square[0])).log_prob(z[0]))


def broadcast_probe(hw5_vae, mnist: Path, z: torch.Tensor) -> np.ndarray:
    return as_array(vae_function(hw5_vae, "logpdf_diagonal_gaussian", mnist)(z, torch.zeros(2), torch.ones(2)))


def test_2b_i_logpdf_diagonal_gaussian_broadcasts(probe, mnist):
    """The prior's mean and variance as (latent,) tensors, broadcast against z (B, latent)."""
    z = torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(2))
    logprob = torch.from_numpy(probe(broadcast_probe, mnist, z)).float()
    assert logprob.shape == (BATCH,), (f"shape {tuple(logprob.shape)} for mu and sigma_square of shape (2,): expected "
                                       f"({BATCH},)")
    torch.testing.assert_close(logprob, -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi))


def test_2b_ii_logpdf_bernoulli(probe, mnist):
    """Over 784 pixels with p in [0.001, 0.999]: a sum of logs (the log of a product of 784 probabilities
    underflows to -inf)."""
    generator = torch.Generator().manual_seed(3)
    p = torch.rand(BATCH, 784, generator=generator) * 0.998 + 0.001
    x = torch.bernoulli(torch.rand(BATCH, 784, generator=generator), generator=generator)
    logprob = torch.from_numpy(probe(function_probe, mnist, "logpdf_bernoulli", x, p)).float()
    assert logprob.shape == (BATCH,), f"shape {tuple(logprob.shape)}: one log-likelihood per row, (batch_size,)"
    expected = Bernoulli(probs=p).log_prob(x).sum(1)  # (a -inf from an underflow never gets here: sandbox.decode)
    torch.testing.assert_close(logprob, expected, rtol=1e-4, atol=0.5,
                               msg="sum_j x_j log p_j + (1 - x_j) log(1 - p_j) differs from torch.distributions'")


def test_2b_iii_sample_diagonal_gaussian_statistics(probe, mnist):
    """The mean and variance of 200 000 draws are mu and sigma_square, within 5 standard errors."""
    mu = torch.tensor([[-2.0, 3.0]]).expand(200_000, 2)
    sigma_square = torch.tensor([[0.25, 4.0]]).expand(200_000, 2)
    z = torch.from_numpy(probe(function_probe, mnist, "sample_diagonal_gaussian", mu, sigma_square, seed=4)).float()
    assert z.shape == (200_000, 2), f"200 000 draws in batches of {BATCH} gave shape {tuple(z.shape)}, not (200000, 2)"
    # Standard errors: of a mean sigma/sqrt(n) <= 0.0045, of a variance sigma^2 sqrt(2/n) <= 0.013; 5 s.e.
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.025, rtol=0, msg="the samples' mean is not mu")
    torch.testing.assert_close(z.var(0), sigma_square[0], atol=0.07, rtol=0,
                               msg="the samples' variance is not sigma_square")


def reparameterized_probe(hw5_vae, mnist: Path, mu: torch.Tensor, sigma_square: torch.Tensor) -> dict:
    function = vae_function(hw5_vae, "sample_diagonal_gaussian", mnist)
    manual_seed(5)
    mu, sigma_square = mu.clone().requires_grad_(), sigma_square.clone().requires_grad_()
    z = function(mu, sigma_square)
    if not z.requires_grad:
        return {"z": z, "reparameterized": False}
    z.sum().backward()
    return {"z": z, "reparameterized": True, "mu": mu.grad, "sigma_square": sigma_square.grad}


def test_2b_iii_sample_diagonal_gaussian_reparameterized(probe, mnist):
    """z = mu + sigma * eps: dz/dmu = 1 and dz/dsigma_square = eps / (2 sigma) = (z - mu) / (2 sigma_square)."""
    generator = torch.Generator().manual_seed(5)
    mu, sigma_square = torch.randn(BATCH, 2, generator=generator), torch.rand(BATCH, 2, generator=generator) + 0.5
    found = probe(reparameterized_probe, mnist, mu, sigma_square)
    assert found["reparameterized"], ("the sample carries no gradient: use z = mu + sqrt(sigma_square) * eps, "
                                      "eps ~ N(0, I)")
    assert found["mu"] is not None and found["sigma_square"] is not None, "no gradient reaches mu and sigma_square"
    z = torch.from_numpy(found["z"]).float()
    torch.testing.assert_close(torch.from_numpy(found["mu"]).float(), torch.ones(BATCH, 2), msg="dz/dmu is not 1")
    torch.testing.assert_close(torch.from_numpy(found["sigma_square"]).float(), (z - mu) / (2 * sigma_square),
                               msg="dz/dsigma_square is not eps / (2 sigma): z is not mu + sqrt(sigma_square) * eps")


def bernoulli_probe(hw5_vae, mnist: Path, p: torch.Tensor) -> dict:
    function = vae_function(hw5_vae, "sample_Bernoulli", mnist)
    manual_seed(6)
    draws = [function(p) for _ in range(10)]
    return {"dtypes": [str(x.dtype) for x in draws], "x": torch.cat([torch.as_tensor(x).float() for x in draws])}


def test_2b_iv_sample_bernoulli(probe, mnist):
    """float32 values in {0, 1}, each pixel 1 with probability p (means of 156 800 draws of each p, within 5 standard
    errors)."""
    values = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    p = values.repeat(BATCH * 784 // 5 + 1)[:BATCH * 784].view(BATCH, 784)
    found = probe(bernoulli_probe, mnist, p)
    assert set(found["dtypes"]) == {"torch.float32"}, f"samples of dtype {found['dtypes'][0]}: float32 expected, like p"
    x = torch.from_numpy(found["x"])
    assert x.shape == (10 * BATCH, 784), f"sample_Bernoulli gave shape {tuple(x.shape[1:])}: (B, 784) like p expected"
    assert set(x.unique().tolist()) <= {0.0, 1.0}, "the samples must be 0 or 1"
    means = torch.stack([x[p.repeat(10, 1) == value].mean() for value in values])
    torch.testing.assert_close(means, values, atol=0.008, rtol=0, msg="each pixel must be 1 with probability p")


# ----------------------------------------------------------------------------------------------------
# 2.c  sample_z and the ELBO


def test_2c_sample_z(probe, mnist):
    """sample_z(mu, sigma_square) draws from q(z|x) = N(mu, diag sigma_square): the mean and variance of 100 000
    draws."""
    mu, sigma_square = torch.tensor([[1.0, -1.0]]).expand(100_000, 2), torch.tensor([[0.5, 2.0]]).expand(100_000, 2)
    z = torch.from_numpy(probe(function_probe, mnist, "sample_z", mu, sigma_square, seed=7)).float()
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.03, rtol=0, msg="the samples' mean is not mu")
    torch.testing.assert_close(z.var(0), sigma_square[0], atol=0.06, rtol=0,
                               msg="the samples' variance is not sigma_square")


def elbo_probe(hw5_vae, mnist: Path, *inputs: torch.Tensor) -> np.ndarray:
    vae = with_reference_densities(course_vae(hw5_vae, mnist))
    manual_seed(8)
    return as_array(vae.elbo_loss(*inputs))


def test_2c_elbo_loss(probe, mnist):
    """ELBO (Eq. 2) = log p(x|z) + log p(z) - log q(z|x), averaged (or summed) over the batch, a scalar to maximize.
    Graded with our log-densities in place of the student's: elbo_loss alone."""
    generator = torch.Generator().manual_seed(8)
    z, mu = torch.randn(BATCH, 2, generator=generator), torch.randn(BATCH, 2, generator=generator)
    sigma_square = torch.rand(BATCH, 2, generator=generator) + 0.2
    x = torch.bernoulli(torch.rand(BATCH, 784, generator=generator), generator=generator)
    p = torch.rand(BATCH, 784, generator=generator) * 0.9 + 0.05
    elbo = probe(elbo_probe, mnist, z, mu, sigma_square, x, p)
    assert elbo.shape == (), f"elbo_loss returned shape {elbo.shape}: expected a scalar"
    per_image = (Bernoulli(probs=p).log_prob(x).sum(1) + Normal(0.0, 1.0).log_prob(z).sum(1)
                 - Normal(mu, sigma_square.sqrt()).log_prob(z).sum(1))
    mean, total = per_image.mean().item(), per_image.sum().item()
    assert any(abs(float(elbo) - value) < 1e-3 * abs(value) + 1e-3 for value in (mean, total)), (
        f"elbo_loss = {float(elbo):.3f}; log p(x|z) + log p(z) - log q(z|x) is {mean:.3f} averaged over the batch "
        f"(or {total:.3f} summed)")


def untrained_elbo_probe(hw5_vae, mnist: Path, images: torch.Tensor) -> list:
    vae = with_reference_densities(course_vae(hw5_vae, mnist))
    manual_seed(9)
    return [as_number(students_elbo(vae, images[start:start + BATCH])) for start in range(0, len(images), BATCH)]


def test_2c_elbo_sign_and_scale(probe, mnist, held_out_digits):
    """On 500 real digits, in batches of 100, an untrained VAE's ELBO (decoder p ~ 0.5 for every pixel) is about
    784 log 0.5 = -543 nats per image (summed over the pixels), averaged over the batch (or -543 x 100 summed over
    it); with our log-densities, as above."""
    elbo = float(np.mean(probe(untrained_elbo_probe, mnist, held_out_digits[:500])))
    assert -620 < elbo < -520 or -620 * BATCH < elbo < -520 * BATCH, (
        f"elbo_loss of an untrained VAE on batches of {BATCH} real digits = {elbo:.1f}; expected about -543 nats per "
        f"image: a log-likelihood (negative), summed over the 784 pixels, averaged (or summed) over the batch")


# ----------------------------------------------------------------------------------------------------
# 2.d  Training on real MNIST


def training_probe(hw5_vae, mnist: Path, held_out: torch.Tensor) -> dict:
    """The test ELBO (reference_elbo) of the student's VAE(args) before and after 6 epochs of the course's loop on
    its first 2000 training images with the student's own functions."""
    manual_seed(13)
    vae = course_vae(hw5_vae, mnist)
    with torch.no_grad():
        before = reference_elbo(vae, held_out)
    train_briefly(vae, vae.train_images[:2000], students_elbo)
    with torch.no_grad():  # in chunks of 500 images: 10 decoded samples of all 2000 at once take half a gigabyte
        after = torch.cat([reference_elbo(vae, chunk, samples=10) for chunk in held_out.split(500)])
    return {"before": before, "after": after}


def test_2d_training(probe, mnist, held_out_digits):
    """6 epochs of the course's loop on 2000 real digits, with the student's encoder, sample_z, decoder and
    elbo_loss, take the test ELBO (measured independently) from about -543 to above -200."""
    found = probe(training_probe, mnist, held_out_digits)
    before, after = (float(np.mean(found[when])) for when in ("before", "after"))
    assert found["after"].shape == (len(held_out_digits),)
    assert before < -500
    assert after > -200, (f"the test ELBO went from {before:.0f} to {after:.0f} nats in 6 epochs of training on "
                          f"-elbo_loss (a correct VAE reaches about -180): check 2.b-2.c")


# ----------------------------------------------------------------------------------------------------
# 2.e  Figures, graded by what they draw


def figures_training_probe(hw5_vae, mnist: Path) -> dict:
    """The student's VAE(args) trained for 2.e: 6 epochs on the first 2000 of its training images, with the reference
    ELBO; its weights."""
    manual_seed(12)
    vae = course_vae(hw5_vae, mnist)
    train_briefly(vae, vae.train_images[:2000], reference_elbo)
    return dict(vae.state_dict())


@pytest.fixture(scope="module")
def trained(probe, mnist) -> dict:
    """The weights of the student's VAE(args) trained for 2.e (once per grading run)."""
    return probe(figures_training_probe, mnist)


def trained_vae(hw5_vae, mnist: Path, weights: dict):
    """In the worker: the student's VAE(args) with the weights `trained` sent back, frozen."""
    vae = course_vae(hw5_vae, mnist)
    vae.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
    return vae.requires_grad_(False)


def drawn_by(hw5_vae, visualize) -> list:
    """In the worker: what visualize() draws with matplotlib (tests/drawn.py)."""
    with drawn.capture(hw5_vae) as drawings:
        visualize()
    return drawings


def figures_of(data: list) -> list:
    """The drawings a probe sent back; they must exist."""
    drawings = drawn.received(data)
    assert drawings, "nothing was drawn with matplotlib (plt.imshow / plt.scatter), nor saved or shown"
    return drawings


@torch.no_grad()
def judge_confidence(judge, images: torch.Tensor) -> float:
    """The MNIST judge's mean top-class probability on images (N, 784): 1.0 on real digits, 0.50-0.91 on the 10
    prior means of a 6-epoch model, about 0.3 on noise, grey or blank images and an untrained decoder's."""
    return judge(images.float().cpu()).softmax(1).max(1).values.mean().item()


def bernoulli_z_scores(samples: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """How typical each binary sample (S, 784) is of each mean p (M, 784) as a draw x ~ Bernoulli(p): log p(x) less
    its expectation -H(p), in standard deviations (the sum over pixels of independent terms): (S, M). A true draw
    scores within a few units of 0; a draw of another mean far below; the rounded mean (no draw) far above."""
    p = means.double().clamp(1e-6, 1 - 1e-6)
    log_p, log_q = p.log(), (1 - p).log()
    loglik = samples.double() @ log_p.T + (1 - samples.double()) @ log_q.T  # (S, M)
    expected = (p * log_p + (1 - p) * log_q).sum(1)                           # -H(p), (M,)
    spread = (p * (1 - p) * (log_p - log_q) ** 2).sum(1).sqrt()              # (M,)
    return (loglik - expected) / spread


def is_binary(pixels: np.ndarray) -> bool:
    return bool(np.all((np.abs(pixels) < 1e-6) | (np.abs(pixels - 1) < 1e-6)))


PRIOR_DRAWS = 1000  # decoded prior draws the figure's means are compared with


def data_space_probe(hw5_vae, mnist: Path, weights: dict) -> dict:
    """What visualize_data_space() draws, how far from p(x|z) for any z each digit drawn is (`latent_of`, per figure
    in drawn.tiles' order), and p(x|z) of PRIOR_DRAWS fresh prior draws z ~ N(0, I)."""
    vae = trained_vae(hw5_vae, mnist, weights)
    manual_seed(14)
    drawings = drawn_by(hw5_vae, vae.visualize_data_space)
    with torch.no_grad():
        prior = vae.decoder(torch.randn(PRIOR_DRAWS, 2, generator=torch.Generator().manual_seed(0)))
    return {"drawings": drawings, "prior": prior, "errors": [decoded_error(vae, drawing) for drawing in drawings]}


def decoded_error(vae, drawing) -> torch.Tensor:
    """In the worker: for each digit drawn (drawn.tiles), the decoder's largest pixel error at the z found back
    for it through the decoder (latent_of, started at the decoded prior draws)."""
    tiles = drawn.tiles(drawing)
    if not tiles:
        return torch.zeros(0)
    pixels = torch.as_tensor(np.stack([tile.pixels for tile in tiles]).reshape(len(tiles), 784), dtype=torch.float32)
    starts = torch.randn(PRIOR_DRAWS, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        candidates = vae.decoder(starts)
    return latent_of(vae, pixels, starts, candidates)[1]


def spread(images: torch.Tensor) -> torch.Tensor:
    """How much images (..., K, 784) differ: the mean distance between two of them (...)."""
    k = images.shape[-2]
    return torch.cdist(images, images).sum((-1, -2)) / (k * (k - 1))


def varies_as_prior_draws(means: torch.Tensor, prior: torch.Tensor) -> bool:
    """Whether the decoded means shown (the first ten of them, K, 784) differ from one another at least half as much
    as the least varied one in a thousand sets of K decoded prior draws (prior (N, 784)): ten copies of one image, or
    draws of N(0, εI), do not."""
    means = means[:10]
    k = len(means)
    if k < 2:
        return True
    generator = torch.Generator().manual_seed(0)
    subsets = torch.stack([torch.randperm(len(prior), generator=generator)[:k] for _ in range(2000)])
    typical = spread(prior.double()[subsets])
    return bool(spread(means.double()) >= 0.5 * torch.quantile(typical, 0.001))


def test_2e_i_data_space(probe, mnist, trained, deduct, request):
    """visualize_data_space(): 10 prior draws z ~ N(0, I), each as p(x|z) (grey: the decoder's output, found back
    through it) beside a Bernoulli sample x of it (binary), in one figure, in any layout (10 x 2 or 2 x 10, one grid or
    one image per subplot); the means as varied as ten decodings of prior draws."""
    found = probe(data_space_probe, mnist, trained)
    drawings = figures_of(found["drawings"])
    figures = [[tile.pixels for tile in drawn.tiles(drawing)] for drawing in drawings]
    assert any(figures), "no figure shows 28x28 digits (plt.imshow of concat_images(...) or of each image)"
    assert [len(errors) for errors in found["errors"]] == [len(digits) for digits in figures]
    decoded = [sum(error < 0.02 for digit, error in zip(digits, errors) if not is_binary(digit))
               for digits, errors in zip(figures, found["errors"])]
    grey = [sum(not is_binary(digit) for digit in digits) for digits in figures]
    assert sum(decoded) >= 0.9 * sum(grey), (f"{sum(grey) - sum(decoded)} of the {sum(grey)} grey digits drawn are not "
                                             f"p(x|z) for any z: show the decoder's output for z drawn from the prior")
    split = [([t for t in digits if not is_binary(t)], [t for t in digits if is_binary(t)]) for digits in figures]
    means, samples = max(split, key=lambda pair: min(len(pair[0]), len(pair[1])))
    if not (means and samples):  # each figure has one kind: take the figure with the most of each
        deduct("not side by side", "the decoded means p(x|z) and their Bernoulli samples are not in one figure "
                                   "(or one of the two is missing)")
        means = max((grey for grey, _ in split), key=len)
        samples = max((binary for _, binary in split), key=len)
    assert means, "no decoded means p(x|z) (grey images) are shown"
    shown = min(len(means), len(samples))
    if shown < 10:
        deduct("fewer draws", f"{shown} prior samples shown: 10 asked")
    means_t = torch.as_tensor(np.stack(means).reshape(len(means), 784), dtype=torch.float32)
    if samples:
        samples_t = torch.as_tensor(np.stack(samples).reshape(len(samples), 784), dtype=torch.float32)
        plausible = bernoulli_z_scores(samples_t, means_t).abs() < 5  # (samples, means)
        if not (plausible.any(1).all() and plausible.any(0).all()):
            deduct("not drawn from the means", "the binary images are not Bernoulli samples x ~ p(x|z) of the means "
                                               "shown, one sample of each mean (check sample_Bernoulli)")
    prior = torch.as_tensor(found["prior"], dtype=torch.float32)
    assert prior.shape == (PRIOR_DRAWS, 784), f"the decoder gives shape {tuple(prior.shape)} for {PRIOR_DRAWS} draws"
    if not varies_as_prior_draws(means_t, prior):
        deduct("not drawn from the prior", "the decoded means barely differ from one another, much less than "
                                           "decodings of ten draws z ~ N(0, I) do: draw each z from the prior")
    confidence = judge_confidence(request.getfixturevalue("judge"), means_t)  # the probe's worker never held it
    if not confidence >= 0.42:
        deduct("not digits", f"the decoded prior samples do not look like digits (the MNIST judge's mean "
                             f"confidence {confidence:.2f}): decode z drawn from the prior N(0, I)")


def matched(points: torch.Tensor, targets: torch.Tensor, tolerance: float) -> torch.Tensor:
    """For each of points (N, 2), the index of the nearest of targets (M, 2) within tolerance, else -1."""
    found = []
    for chunk in points.split(1000):
        distance, index = torch.cdist(chunk, targets).min(1)
        found.append(torch.where(distance <= tolerance, index, -1))
    return torch.cat(found)


def latent_space_probe(hw5_vae, mnist: Path, weights: dict) -> dict:
    """What visualize_latent_space() draws, and the means of q(z|x) of the VAE's training images."""
    vae = trained_vae(hw5_vae, mnist, weights)
    drawings = drawn_by(hw5_vae, vae.visualize_latent_space)
    with torch.no_grad():
        return {"drawings": drawings, "means": vae.encoder(vae.train_images)[0]}


@pytest.fixture(scope="module")
def training_digits(mnist_path) -> torch.Tensor:
    """The digits of the course's 10000 training images (those load_mnist() gives the student's VAE), read here."""
    return torch.from_numpy(hw5_utils.course_arrays(mnist_path)[1][:10000].astype(np.int64))


def test_2e_ii_latent_space(probe, mnist, trained, training_digits, deduct):
    """visualize_latent_space(): a scatter of the means of q(z|x) of the training images, coloured by digit (one
    plt.scatter, or plt.plot with markers, per point or per digit)."""
    found = probe(latent_space_probe, mnist, trained)
    scatters = [drawing.scatters for drawing in figures_of(found["drawings"]) if drawing.scatters]
    assert scatters, "no scatter plot was drawn (plt.scatter of the latent means)"
    scatter = max(scatters, key=lambda parts: sum(len(part.points) for part in parts))
    points = torch.as_tensor(np.concatenate([part.points for part in scatter]), dtype=torch.float32)
    colours = np.concatenate([part.colours for part in scatter]).round(3)
    means, labels = torch.as_tensor(found["means"], dtype=torch.float32), training_digits
    assert means.shape == (len(labels), 2), (f"the encoder's means of the {len(labels)} training images have shape "
                                             f"{tuple(means.shape)}")
    index = matched(points, means, 1e-3 * float(means.std()) + 1e-5)
    hits = index >= 0
    share = hits.float().mean().item()
    if hits.sum() < 1000 or share < 0.95:
        deduct("not the means", f"{int(hits.sum())} of the {len(points)} points drawn are means of q(z|x) of "
                                f"training images (encoder(x)[0], the first of its two outputs): draw one point per "
                                f"training image at its mean")
        return
    digit = labels[index[hits]].numpy()
    shown = [tuple(colour) for colour in colours[hits.numpy()]]
    majority = {}
    for d in np.unique(digit):
        group = [shown[k] for k in np.flatnonzero(digit == d)]
        majority[d] = max(set(group), key=group.count)
        if group.count(majority[d]) < 0.9 * len(group):
            majority[d] = None
    if None in majority.values() or len(set(majority.values())) < len(majority):
        deduct("not coloured by digit", "the points are not coloured by their digit (one colour per digit, "
                                        "c=labels or one scatter per digit)")


def latent_of(vae, tiles: torch.Tensor, starts: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """In the worker: the latent z whose p(x|z) is each tile (K, 784): started at the nearest of the candidates'
    decoded means (starts (M, L) -> candidates (M, 784)), refined by gradient descent (Adam, its rate decayed to 0 so
    that it settles), and kept at the start where that was closer (a tile that is a candidate's decoded mean stays
    exactly there). Returns z (K, L) and the largest pixel error of decoder(z) against each tile (K,)."""
    start = starts[torch.cdist(tiles, candidates).argmin(1)]
    z = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([z], lr=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 300)
    for _ in range(300):
        loss = (vae.decoder(z) - tiles).square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        errors = [(vae.decoder(point) - tiles).abs().amax(1) for point in (start, z)]
        closer = errors[0] <= errors[1]
        return torch.where(closer[:, None], start, z.detach()), torch.minimum(*errors)


def interpolation_probe(hw5_vae, mnist: Path, weights: dict) -> dict:
    """What visualize_inter_class_interpolation() draws, each digit drawn found back through the decoder (its z and
    the decoder's largest pixel error there), and the means of q(z|x) of the training images with their digits."""
    vae = trained_vae(hw5_vae, mnist, weights)
    manual_seed(15)
    drawings = drawn_by(hw5_vae, vae.visualize_inter_class_interpolation)
    with torch.no_grad():
        means = vae.encoder(vae.train_images)[0].float()
        candidates = vae.decoder(means)
    figures = []
    for drawing in drawings:
        tiles = drawn.tiles(drawing)
        if tiles:
            pixels = torch.as_tensor(np.stack([tile.pixels for tile in tiles]).reshape(len(tiles), 784),
                                     dtype=torch.float32)
            z, error = latent_of(vae.requires_grad_(False), pixels, means, candidates)
            figures.append({"rows": [tile.row for tile in tiles], "cols": [tile.col for tile in tiles], "z": z,
                            "error": error})
    return {"figures": figures, "means": means, "labels": torch.as_tensor(vae.train_labels).argmax(1),
            "drawn": len(drawings)}


def interpolation_of(z: torch.Tensor, means: torch.Tensor, tolerance: float) -> dict | None:
    """Whether latents z (n, L), in order, are z_alpha = alpha mu_b + (1 - alpha) mu_a for training means mu_a
    (at z[0]) and mu_b: on the line, evenly spaced, from one training image's mean. Returns {"alphas", "a", "b"}
    (b None when the row stops short of the other image's mean), or None."""
    for z in (z, z.flip(0)):
        a = matched(z[:1], means, tolerance).item()
        if a < 0 or len(z) < 2:
            continue
        direction = z[-1] - z[0]
        length = direction.norm()
        if length < tolerance:
            continue
        along = (z - z[0]) @ direction / length ** 2                 # 0 at z[0], 1 at z[-1]
        off = (z - z[0] - along[:, None] * direction).norm(dim=1)   # distance from the line
        steps = along.diff()
        if off.max() > 0.02 * length or (steps <= 0).any() or steps.max() > 1.05 * steps.min():
            continue
        b = matched(z[-1:], means, tolerance).item()
        return {"alphas": along, "a": a, "b": b if b >= 0 else None}
    return None


def test_2e_iii_interpolation(probe, mnist, trained, deduct):
    """visualize_inter_class_interpolation(): 3 pairs of training images of different digits, each as a row (or a
    column) of p(x|z_alpha) for z_alpha = alpha mu_a + (1 - alpha) mu_b, alpha = 0, 0.1, ..., 1. The test finds each
    drawn digit's z back through the decoder."""
    found = probe(interpolation_probe, mnist, trained)
    assert found["drawn"], "nothing was drawn with matplotlib (plt.imshow / plt.scatter), nor saved or shown"
    means = torch.as_tensor(found["means"], dtype=torch.float32)
    labels = torch.as_tensor(found["labels"])
    tolerance = 1e-3 * float(means.std())  # a training mean is found back to 1e-5; any other point is 1e-2 away
    best = []
    for figure in found["figures"]:
        z = torch.as_tensor(figure["z"], dtype=torch.float32)
        decoded = torch.as_tensor(figure["error"]) < 0.02  # digits that are p(x|z) for some z
        for along, across in (("rows", "cols"), ("cols", "rows")):
            lines = {}
            for k, (position, other) in enumerate(zip(figure[along], figure[across])):
                lines.setdefault(position, []).append((other, k))
            found_rows = []
            for members in lines.values():
                order = [k for _, k in sorted(members)]
                if len(order) >= 2 and all(decoded[order]):
                    row = interpolation_of(z[order], means, tolerance)
                    found_rows += [row] if row else []
            best = max(best, found_rows, key=len)
    assert best, ("no row or column of the figures shows p(x|z) along a line from one training image's latent mean "
                  "(encoder(x)[0]) to another's: decode z_alpha = interpolate_mu(mu_a, mu_b, alpha) itself, for "
                  "alpha = 0, 0.1, ..., 1")
    if len(best) < 3:
        deduct("fewer pairs", f"{len(best)} interpolation(s) shown: 3 pairs asked")
    eleven = torch.linspace(0, 1, 11)
    if any(row["b"] is None or len(row["alphas"]) != 11 or (row["alphas"] - eleven).abs().max() > 0.02 for row in best):
        deduct("not eleven alphas", f"alpha must take the 11 values 0, 0.1, ..., 1 from one image's mean to the "
                                    f"other's; found {[len(row['alphas']) for row in best]} steps")
    if any(row["b"] is not None and labels[row["a"]] == labels[row["b"]] for row in best):
        deduct("same digit", "a pair of images of the same digit: pairs of different classes asked")
