"""The graded tests of the `vae` assignment (Fall 2022, question 2): a student's hw5_vae.py, built the course's way.

Each test builds `VAE(args)` as the course's main() does, args being the file's own `parse_args()` defaults (or the
course's, if it has none that work), so the student's `__init__` loads `load_mnist()` from our hw5_utils. Every
function is checked against an independent reference: torch.distributions, a closed form, the network recomputed
by hand; never against itself. The figures of 2.e are graded by what the student's `visualize_*()` DRAW (tests/
drawn.py), called with no arguments, on a model the test trains with its own correct ELBO, so that a mistake in
2.b-2.d costs its own rows and not the figures' too.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal

import drawn
import hw5_utils
from grading import manual_seed, train_once

# The course's parse_args() defaults, for a file whose own parse_args() is missing or fails.
COURSE_ARGS = dict(e_path="./e_params.pkl", d_path="./d_params.pkl", hidden_units=500, latent_dimension=2,
                   data_dimension=784, resume_training=False, seed=1234, num_epoches=200, batch_size=100)


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


def build_vae(module):
    """The student's VAE(args), built as the course's main() builds it."""
    return module.VAE(course_args(module))


def linear(module: nn.Module, in_features: int, out_features: int) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear) and (m.in_features, m.out_features)
            == (in_features, out_features)]


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
    """Monte Carlo ELBO of binary images x (B, 784) with the student's encoder and decoder and torch.distributions,
    averaged over the batch; differentiable (reparameterized)."""
    mu, sigma_square = vae.encoder(x)
    q = Independent(Normal(mu, sigma_square.sqrt()), 1)
    z = q.rsample((samples,))  # (S, B, L)
    log_px = bernoulli_logpdf(x.repeat(samples, 1), vae.decoder(z.flatten(0, 1))).view(samples, -1)
    log_pz = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
    return (log_px + log_pz - q.log_prob(z)).mean()


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
        for start in range(0, len(images), 100):
            loss = -objective(vae, images[start:start + 100])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@pytest.fixture(scope="session")
def held_out_digits(mnist_path) -> torch.Tensor:
    """2000 rounded real digits that no training below sees (the last 2000 of load_mnist()'s 10000 offline)."""
    return hw5_utils.read_mnist(mnist_path, train_size=1, binarize="round").test_images


@pytest.fixture
def vae(hw5_vae):
    manual_seed(0)
    return build_vae(hw5_vae)


@pytest.fixture(scope="session")
def trained(hw5_vae):
    """The student's VAE(args) trained by the test for 2.e: its encoder and decoder, 6 epochs on the first 2000 of
    its training images, with the reference ELBO (trained once per grading run, then cached)."""
    manual_seed(12)
    vae = build_vae(hw5_vae)
    train_once(vae, "vae-figures", lambda: train_briefly(vae, vae.train_images[:2000], reference_elbo))
    vae.requires_grad_(False)
    return vae


# ----------------------------------------------------------------------------------------------------
# 2.a  The decoder


def test_2a_decoder(hw5_vae):
    """Decoder: Linear(latent, 500) -> tanh -> Linear(500, 784) -> sigmoid; output (B, 784) in (0, 1)."""
    manual_seed(0)
    decoder = hw5_vae.Decoder(2, 500, 784)
    count = len([m for m in decoder.modules() if isinstance(m, nn.Linear)])
    assert count == 2, f"the decoder has {count} linear layers: the handout's has two, 2 -> 500 and 500 -> 784"
    (first,), (second,) = linear(decoder, 2, 500), linear(decoder, 500, 784)
    z = torch.randn(7, 2)
    expected = torch.sigmoid(torch.tanh(z @ first.weight.T + first.bias) @ second.weight.T + second.bias)
    p = decoder(z)
    assert p.shape == (7, 784), f"decoder(z) has shape {tuple(p.shape)}, expected (7, 784)"
    torch.testing.assert_close(p, expected, msg="decoder(z) is not sigmoid(fc2(tanh(fc1(z))))")


# ----------------------------------------------------------------------------------------------------
# 2.b  Densities and samplers


def test_2b_i_logpdf_diagonal_gaussian(vae):
    """log N(z; mu, diag sigma_square), one value per row (B,), against torch.distributions (Normal, and
    MultivariateNormal with a diagonal covariance)."""
    manual_seed(1)
    z, mu = torch.randn(6, 2), torch.randn(6, 2)
    sigma_square = torch.rand(6, 2) + 0.1
    logprob = vae.logpdf_diagonal_gaussian(z, mu, sigma_square)
    assert logprob.shape == (6,), f"shape {tuple(logprob.shape)}: one log-density per row, (batch_size,)"
    torch.testing.assert_close(logprob, Independent(Normal(mu, sigma_square.sqrt()), 1).log_prob(z),
                               msg="log N(z; mu, diag sigma_square) differs from torch.distributions'")
    # The same density as a full-covariance Gaussian with a diagonal covariance matrix.
    torch.testing.assert_close(logprob[0], MultivariateNormal(mu[0], torch.diag(sigma_square[0])).log_prob(z[0]))


def test_2b_i_logpdf_diagonal_gaussian_broadcasts(vae):
    """The prior's mean and variance as (latent,) tensors, broadcast against z (B, latent)."""
    manual_seed(2)
    z = torch.randn(5, 2)
    logprob = vae.logpdf_diagonal_gaussian(z, torch.zeros(2), torch.ones(2))
    assert logprob.shape == (5,), f"shape {tuple(logprob.shape)} for mu and sigma_square of shape (2,): expected (5,)"
    torch.testing.assert_close(logprob, -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi))


def test_2b_ii_logpdf_bernoulli(vae):
    """Over 784 pixels with p in [0.001, 0.999]: a sum of logs (the log of a product of 784 probabilities
    underflows to -inf)."""
    manual_seed(3)
    p = torch.rand(4, 784) * 0.998 + 0.001
    x = torch.bernoulli(torch.rand(4, 784))
    logprob = vae.logpdf_bernoulli(x, p)
    assert logprob.shape == (4,), f"shape {tuple(logprob.shape)}: one log-likelihood per row, (batch_size,)"
    expected = Bernoulli(probs=p).log_prob(x).sum(1)
    assert bool(torch.isfinite(logprob).all()), f"log-likelihoods {logprob.tolist()}, expected {expected.tolist()}"
    torch.testing.assert_close(logprob, expected, rtol=1e-4, atol=0.5,
                               msg="sum_j x_j log p_j + (1 - x_j) log(1 - p_j) differs from torch.distributions'")


def test_2b_iii_sample_diagonal_gaussian_statistics(vae):
    """The mean and variance of 200 000 draws are mu and sigma_square, within 5 standard errors."""
    manual_seed(4)
    mu = torch.tensor([[-2.0, 3.0]]).expand(200_000, 2)
    sigma_square = torch.tensor([[0.25, 4.0]]).expand(200_000, 2)
    z = vae.sample_diagonal_gaussian(mu, sigma_square)
    assert z.shape == (200_000, 2)
    # Standard errors: of a mean sigma/sqrt(n) <= 0.0045, of a variance sigma^2 sqrt(2/n) <= 0.013; 5 s.e.
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.025, rtol=0, msg="the samples' mean is not mu")
    torch.testing.assert_close(z.var(0), sigma_square[0], atol=0.07, rtol=0,
                               msg="the samples' variance is not sigma_square")


def test_2b_iii_sample_diagonal_gaussian_reparameterized(vae):
    """z = mu + sigma * eps: dz/dmu = 1 and dz/dsigma_square = eps / (2 sigma) = (z - mu) / (2 sigma_square)."""
    manual_seed(5)
    mu = torch.randn(8, 2, requires_grad=True)
    sigma_square = (torch.rand(8, 2) + 0.5).requires_grad_()
    z = vae.sample_diagonal_gaussian(mu, sigma_square)
    assert z.requires_grad, "the sample carries no gradient: use z = mu + sqrt(sigma_square) * eps, eps ~ N(0, I)"
    z.sum().backward()
    assert mu.grad is not None and sigma_square.grad is not None, "no gradient reaches mu and sigma_square"
    torch.testing.assert_close(mu.grad, torch.ones(8, 2), msg="dz/dmu is not 1")
    torch.testing.assert_close(sigma_square.grad, ((z - mu) / (2 * sigma_square)).detach(),
                               msg="dz/dsigma_square is not eps / (2 sigma): z is not mu + sqrt(sigma_square) * eps")


def test_2b_iv_sample_bernoulli(vae):
    """float32 values in {0, 1}, each pixel 1 with probability p (means of 100 000 draws, within 5 standard
    errors)."""
    manual_seed(6)
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).expand(100_000, 5)
    x = vae.sample_Bernoulli(p)
    assert x.shape == p.shape and x.dtype == torch.float32, f"{x.dtype} {tuple(x.shape)}: expected float32 like p"
    assert set(x.unique().tolist()) <= {0.0, 1.0}, "the samples must be 0 or 1"
    torch.testing.assert_close(x.mean(0), p[0], atol=0.008, rtol=0, msg="each pixel must be 1 with probability p")


# ----------------------------------------------------------------------------------------------------
# 2.c  sample_z and the ELBO


def test_2c_sample_z(vae):
    """sample_z(mu, sigma_square) draws from q(z|x) = N(mu, diag sigma_square): the mean and variance of 100 000
    draws."""
    manual_seed(7)
    mu, sigma_square = torch.tensor([[1.0, -1.0]]).expand(100_000, 2), torch.tensor([[0.5, 2.0]]).expand(100_000, 2)
    z = vae.sample_z(mu, sigma_square)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.03, rtol=0, msg="the samples' mean is not mu")
    torch.testing.assert_close(z.var(0), sigma_square[0], atol=0.06, rtol=0,
                               msg="the samples' variance is not sigma_square")


def test_2c_elbo_loss(vae):
    """ELBO (Eq. 2) = log p(x|z) + log p(z) - log q(z|x), averaged (or summed) over the batch, a scalar to maximize.
    Graded with our log-densities in place of the student's: elbo_loss alone."""
    manual_seed(8)
    z, mu = torch.randn(5, 2), torch.randn(5, 2)
    sigma_square = torch.rand(5, 2) + 0.2
    x, p = torch.bernoulli(torch.rand(5, 784)), torch.rand(5, 784) * 0.9 + 0.05
    per_image = (Bernoulli(probs=p).log_prob(x).sum(1) + Normal(0.0, 1.0).log_prob(z).sum(1)
                 - Normal(mu, sigma_square.sqrt()).log_prob(z).sum(1))
    elbo = torch.as_tensor(with_reference_densities(vae).elbo_loss(z, mu, sigma_square, x, p))
    assert elbo.dim() == 0, f"elbo_loss returned shape {tuple(elbo.shape)}: expected a scalar"
    mean, total = per_image.mean().item(), per_image.sum().item()
    assert any(abs(elbo.item() - value) < 1e-3 * abs(value) + 1e-3 for value in (mean, total)), (
        f"elbo_loss = {elbo.item():.3f}; log p(x|z) + log p(z) - log q(z|x) is {mean:.3f} averaged over the batch "
        f"(or {total:.3f} summed)")


def test_2c_elbo_sign_and_scale(vae):
    """On 500 real digits, an untrained VAE's ELBO (decoder p ~ 0.5 for every pixel) is about 784 log 0.5 = -543 nats
    per image (summed over the pixels), averaged over the batch (or -543 x 500 summed over it); with our
    log-densities, as above."""
    manual_seed(9)
    x = vae.train_images[:500]
    elbo = torch.as_tensor(students_elbo(with_reference_densities(vae), x)).item()
    assert -620 < elbo < -520 or -620 * 500 < elbo < -520 * 500, (
        f"elbo_loss of an untrained VAE on 500 real digits = {elbo:.1f}; expected about -543 nats per image: a "
        f"log-likelihood (negative), summed over the 784 pixels, averaged (or summed) over the batch")


# ----------------------------------------------------------------------------------------------------
# 2.d  Training on real MNIST


def test_2d_training(hw5_vae, held_out_digits):
    """6 epochs of the course's loop on 2000 real digits, with the student's encoder, sample_z, decoder and
    elbo_loss, take the test ELBO (measured independently) from about -543 to above -200."""
    manual_seed(13)
    vae = build_vae(hw5_vae)
    with torch.no_grad():
        before = reference_elbo(vae, held_out_digits).item()
    train_once(vae, "vae-students-elbo", lambda: train_briefly(vae, vae.train_images[:2000], students_elbo))
    with torch.no_grad():  # in chunks of 500 images: 10 decoded samples of all 2000 at once take half a gigabyte
        after = torch.stack([reference_elbo(vae, chunk, samples=10)
                             for chunk in held_out_digits.split(500)]).mean().item()
    assert before < -500
    assert after > -200, (f"the test ELBO went from {before:.0f} to {after:.0f} nats in 6 epochs of training on "
                          f"-elbo_loss (a correct VAE reaches about -180): check 2.b-2.c")


# ----------------------------------------------------------------------------------------------------
# 2.e  Figures, graded by what they draw


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


def figures_drawn(call) -> list:
    """What call() draws with matplotlib (tests/drawn.py); the figures must exist."""
    with drawn.capture() as drawings:
        call()
    assert drawings, "nothing was drawn with matplotlib (plt.imshow / plt.scatter), nor saved or shown"
    return drawings


def test_2e_i_data_space(trained, judge, deduct):
    """visualize_data_space(): 10 prior draws z ~ N(0, I), each as p(x|z) (grey) beside a Bernoulli sample x of it
    (binary), in one figure, in any layout (10 x 2 or 2 x 10, one grid or one image per subplot)."""
    manual_seed(14)
    drawings = figures_drawn(trained.visualize_data_space)
    figures = [[tile.pixels for tile in drawn.tiles(drawing)] for drawing in drawings]
    assert any(figures), "no figure shows 28x28 digits (plt.imshow of concat_images(...) or of each image)"
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
    confidence = judge_confidence(judge, means_t)
    if confidence < 0.42:
        deduct("not digits", f"the decoded prior samples do not look like digits (the MNIST judge's mean "
                             f"confidence {confidence:.2f}): decode z drawn from the prior N(0, I)")


def matched(points: torch.Tensor, targets: torch.Tensor, tolerance: float) -> torch.Tensor:
    """For each of points (N, 2), the index of the nearest of targets (M, 2) within tolerance, else -1."""
    found = []
    for chunk in points.split(1000):
        distance, index = torch.cdist(chunk, targets).min(1)
        found.append(torch.where(distance <= tolerance, index, -1))
    return torch.cat(found)


def test_2e_ii_latent_space(trained, deduct):
    """visualize_latent_space(): a scatter of the means of q(z|x) of the training images, coloured by digit."""
    drawings = figures_drawn(trained.visualize_latent_space)
    scatters = [drawing.scatters for drawing in drawings if drawing.scatters]
    assert scatters, "no scatter plot was drawn (plt.scatter of the latent means)"
    scatter = max(scatters, key=lambda parts: sum(len(part.points) for part in parts))
    points = torch.as_tensor(np.concatenate([part.points for part in scatter]), dtype=torch.float32)
    colours = np.concatenate([part.colours for part in scatter]).round(3)
    with torch.no_grad():
        means = trained.encoder(trained.train_images)[0].float()
    labels = trained.train_labels.argmax(1)
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
    """The latent z whose p(x|z) is each tile (K, 784): started at the nearest of the candidates' decoded means
    (starts (M, L) -> candidates (M, 784)), refined by gradient descent. Returns z (K, L) and the largest pixel
    error of decoder(z) against each tile (K,)."""
    z = starts[torch.cdist(tiles, candidates).argmin(1)].clone().requires_grad_()
    optimizer = torch.optim.Adam([z], lr=0.01)
    for _ in range(300):
        loss = (vae.decoder(z) - tiles).square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return z.detach(), (vae.decoder(z) - tiles).abs().amax(1)


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


def test_2e_iii_interpolation(trained, deduct):
    """visualize_inter_class_interpolation(): 3 pairs of training images of different digits, each as a row (or a
    column) of p(x|z_alpha) for z_alpha = alpha mu_a + (1 - alpha) mu_b, alpha = 0, 0.1, ..., 1. The test finds each
    drawn digit's z back through the decoder."""
    manual_seed(15)
    drawings = figures_drawn(trained.visualize_inter_class_interpolation)
    with torch.no_grad():
        means = trained.encoder(trained.train_images)[0].float()
        candidates = trained.decoder(means)
    labels = trained.train_labels.argmax(1)
    tolerance = 1e-3 * float(means.std())  # a training mean is found back to 1e-5; any other point is 1e-2 away
    best = []
    for drawing in drawings:
        tiles = drawn.tiles(drawing)
        if not tiles:
            continue
        pixels = torch.as_tensor(np.stack([tile.pixels for tile in tiles]).reshape(len(tiles), 784),
                                 dtype=torch.float32)
        z, error = latent_of(trained, pixels, means, candidates)
        decoded = error < 0.02  # digits that are p(x|z) for some z
        for along in ("row", "col"):
            across = "col" if along == "row" else "row"
            lines = {}
            for k, tile in enumerate(tiles):
                lines.setdefault(getattr(tile, along), []).append((getattr(tile, across), k))
            found = []
            for members in lines.values():
                order = [k for _, k in sorted(members)]
                if len(order) >= 2 and all(decoded[order]):
                    row = interpolation_of(z[order], means, tolerance)
                    found += [row] if row else []
            best = max(best, found, key=len)
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
