"""Numerical checks of the homework's written answers (issue 6): VAE, KL, Lagrangian, GAN, diffusion, Langevin.

Each test states one claim in its docstring and checks it against an independent computation: Monte Carlo
(tolerance: a few standard errors, estimated from the samples), trapezoidal quadrature on a fine grid
(tolerance: far below any wrong constant), autograd or finite differences, brute-force search, or simulating
the process the claim is about. A claim is never compared with the formula that states it. Where the usual
answer needs a correction or a condition, the docstring says what the correct statement is.

Everything is float64 on the CPU with a fixed torch.Generator per test; the global RNG is left untouched and the
thread count (one, for speed) is restored afterwards. The tests take under 10 seconds. hw5_diffusion and hw5_gan
are deliberately not imported: these checks are about the mathematics, so the diffusion and GAN claims are
self-contained torch computations; only the VAE claims go through hw5_vae's functions.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, MultivariateNormal, Normal

from hw5_vae import VAE, parse_args

F64 = torch.float64
SE = 5.0  # Monte Carlo tolerance, in standard errors: |z| > 5 has probability ~6e-7 per comparison


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small operations run faster on one thread


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=F64)


def grid(lo: float, hi: float, n: int) -> torch.Tensor:
    return torch.linspace(lo, hi, n, dtype=F64)


def integrate(values: torch.Tensor, points: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Trapezoidal rule. For Gaussian-like integrands that vanish at the grid's ends its error is about
    exp(-2 pi^2 s^2 / h^2) (s the narrowest width, h the spacing), so h <= s/3 is exact to double precision."""
    return torch.trapezoid(values, points, dim=dim)


def normal(mean, std) -> Normal:
    return Normal(torch.as_tensor(mean, dtype=F64), torch.as_tensor(std, dtype=F64))


def assert_mc(estimate, truth, standard_error, what: str, k: float = SE) -> None:
    """|estimate - truth| <= k standard errors (elementwise); the message shows how many it was."""
    estimate, truth, standard_error = (torch.as_tensor(v, dtype=F64) for v in (estimate, truth, standard_error))
    z = ((estimate - truth).abs() / standard_error).max().item()
    assert z <= k, f"{what}: {estimate.tolist()} vs {truth.tolist()} is {z:.1f} standard errors off"


# 1-D Gaussian mixtures as (weights, means, stds): the toy densities of the GAN and score-matching checks.
def mixture_log_density(x: torch.Tensor, mixture) -> torch.Tensor:
    weights, means, stds = (torch.tensor(v, dtype=F64) for v in mixture)
    return torch.logsumexp(normal(means, stds).log_prob(x[..., None]) + weights.log(), dim=-1)


def mixture_sample(n: int, mixture, g: torch.Generator) -> torch.Tensor:
    weights, means, stds = (torch.tensor(v, dtype=F64) for v in mixture)
    k = torch.multinomial(weights, n, replacement=True, generator=g)
    return means[k] + stds[k] * randn(n, g=g)


# ----------------------------------------------------------------------------------------------------
# VAE: the Bernoulli decoder, the ELBO identity and Jensen's bound, Eq. 1 (analytic KL) vs Eq. 2 (Monte Carlo).
# A one-dimensional latent makes log p(x) = log ∫ p(x|z) p(z) dz and the posterior p(z|x) exact by quadrature.

X_BINARY = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0], dtype=F64)
Z_GRID = grid(-12.0, 12.0, 4801)


def random_vae(seed: int, latent: int = 1, hidden: int = 8, data: int = 6, scale: float = 1.5) -> VAE:
    """The project's VAE in float64 with N(0, scale^2) weights (1.5: an informative decoder); global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        sizes = [f"--latent_dimension={latent}", f"--hidden_units={hidden}", f"--data_dimension={data}"]
        vae = VAE(parse_args(sizes), load_data=False).double()
    g = gen(seed)
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(scale * randn(*p.shape, g=g))
    return vae


@torch.no_grad()
def exact_evidence(vae: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) and log p(z|x) on Z_GRID for a 1-D latent, by quadrature (references: torch.distributions)."""
    probs = vae.decoder(Z_GRID[:, None])
    log_joint = Bernoulli(probs=probs).log_prob(x.expand_as(probs)).sum(-1) + normal(0.0, 1.0).log_prob(Z_GRID)
    peak = log_joint.max()
    log_px = peak + integrate(torch.exp(log_joint - peak), Z_GRID).log()
    return log_px, log_joint - log_px


def test_logpdf_bernoulli_is_log_of_the_product_likelihood():
    """p(x|z) = prod_j yhat_j^x_j (1 - yhat_j)^(1 - x_j) with yhat = Decoder(z), and VAE.logpdf_bernoulli is its log.

    References: the product formula evaluated literally; torch.distributions.Bernoulli; and normalization — summing
    exp(logpdf_bernoulli) over all 2^12 binary images gives 1 for every z, so it is a distribution over x.
    """
    g = gen(0)
    vae = random_vae(1, latent=2, hidden=16, data=12)
    with torch.no_grad():
        p = vae.decoder(randn(5, 2, g=g))                                       # (5, 12)
    x = torch.bernoulli(p, generator=g)
    product = torch.prod(p ** x * (1 - p) ** (1 - x), dim=1)
    torch.testing.assert_close(VAE.logpdf_bernoulli(x, p), product.log(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(VAE.logpdf_bernoulli(x, p), Bernoulli(probs=p).log_prob(x).sum(-1),
                               rtol=1e-12, atol=1e-12)
    all_images = ((torch.arange(2 ** 12)[:, None] >> torch.arange(12)) & 1).to(F64)  # (4096, 12)
    for row in p:
        total = VAE.logpdf_bernoulli(all_images, row.expand_as(all_images)).exp().sum()
        assert abs(total.item() - 1.0) < 1e-12


# (mu, sigma^2) of q(z|x): the prior, two poor fits, and a close Gaussian fit to the exact posterior.
Q_CASES = [(0.0, 1.0), (1.0, 0.2), (-1.5, 0.05), "posterior-fit"]


def q_parameters(case, log_post: torch.Tensor) -> tuple[float, float]:
    if case != "posterior-fit":
        return case
    post = log_post.exp()
    mean = integrate(Z_GRID * post, Z_GRID)
    return mean.item(), integrate((Z_GRID - mean) ** 2 * post, Z_GRID).item()


@pytest.mark.parametrize("case", Q_CASES, ids=["prior", "poor-1", "poor-2", "posterior-fit"])
def test_elbo_equals_log_evidence_minus_posterior_kl(case):
    """ELBO(q) = log p(x) - KL(q(z|x) || p(z|x)), hence ELBO <= log p(x) (Jensen), and E_q[p(x,z)/q(z|x)] = p(x).

    The ELBO is VAE.elbo_loss (Eq. 2) averaged over 40 000 reparameterized z ~ q; log p(x) and the posterior KL
    come from quadrature. Tolerance: 5 standard errors of the Monte Carlo mean (about 0.01-0.05 nats).
    Jensen: log E_q[w] = log p(x) (importance sampling, checked where w has a finite variance) while
    E_q[log w] = ELBO is below it by the KL, which is resolved (> 5 SE) except for the posterior fit.
    """
    vae = random_vae(2)
    log_px, log_post = exact_evidence(vae, X_BINARY)
    mu, var = q_parameters(case, log_post)
    log_q = normal(mu, math.sqrt(var)).log_prob(Z_GRID)
    kl_posterior = integrate(log_q.exp() * (log_q - log_post), Z_GRID)
    assert kl_posterior >= 0

    g = gen(3)
    chunks, size = 100, 400
    mus, vars_ = torch.full((size, 1), mu, dtype=F64), torch.full((size, 1), var, dtype=F64)
    xs = X_BINARY.expand(size, -1)
    elbos, log_w = [], []
    with torch.no_grad():
        for _ in range(chunks):
            z = mu + math.sqrt(var) * randn(size, 1, g=g)
            p = vae.decoder(z)
            elbos.append(vae.elbo_loss(z, mus, vars_, xs, p))
            log_w.append(Bernoulli(probs=p).log_prob(xs).sum(-1) + normal(0.0, 1.0).log_prob(z[:, 0])
                         - normal(mu, math.sqrt(var)).log_prob(z[:, 0]))
    elbos, log_w = torch.stack(elbos), torch.cat(log_w)
    elbo, elbo_se = elbos.mean(), elbos.std() / math.sqrt(chunks)
    assert_mc(elbo, log_px - kl_posterior, elbo_se, "ELBO vs log p(x) - KL(q || p(z|x))")
    torch.testing.assert_close(elbos, log_w.view(chunks, size).mean(1), rtol=1e-12, atol=1e-10)  # Eq. 2 as written

    assert elbo <= log_px + SE * elbo_se
    if kl_posterior > 2 * SE * elbo_se:
        assert elbo < log_px - SE * elbo_se, "Jensen's gap KL(q || p(z|x)) should be visible here"
    if case in ("prior", "posterior-fit"):  # w = p(x|z) p(z) / q(z) has a finite variance under these q
        w = (log_w - log_px).exp()          # w / p(x), mean 1
        assert_mc(w.mean().log(), 0.0, w.std() / math.sqrt(len(w)), "log E_q[w] vs log p(x)")


def analytic_kl_to_standard_normal(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag var) || N(0, I)) = 1/2 sum(var + mu^2 - 1 - log var); verified by quadrature below."""
    return 0.5 * (var + mu ** 2 - 1 - var.log()).sum(-1)


@pytest.mark.parametrize("mu, var", [(1.0, 0.2), (2.0, 0.5), (0.0, 0.1), (-1.0, 2.0)])
def test_eq1_and_eq2_agree_in_expectation_and_eq1_has_lower_variance(mu, var):
    """Eq. 1, E_q[log p(x|z)] - KL(q || p(z)) with the KL in closed form, and Eq. 2, E_q[log p(x|z) + log p(z) -
    log q(z|x)] (VAE.elbo_loss), have the same expectation, and Eq. 1's estimator has the lower variance when the
    decoder is weakly informative, as at initialization (weights ~ N(0, 0.2^2)), and q differs from the prior.

    Same z for both, 200 chunks of 50 samples each (one elbo_loss call per chunk). Expectation: the paired
    difference is within 5 of its standard errors of 0 (a KL without its 1/2 is off by 0.65-2.1 nats, > 40 SE).
    Variance: the ratio Var(Eq. 1) / Var(Eq. 2) is at most 0.07 for these q over 58 random such decoders; with
    200 chunks the estimated ratio has a relative standard error of ~0.14, so `< 0.5` cannot fail by chance,
    while equal variances (ratio 1) are ~3.5 SE above the threshold.
    The variance claim is not a theorem: Var(Eq. 2) - Var(Eq. 1) = Var(R) - 2 Cov(log p(x|z), R) with
    R = log q(z|x) - log p(z). It is 0 for q = p(z), it can be negative for an informative decoder (ratios up to
    2.3 for decoder weights ~ N(0, 0.5^2)), and Eq. 2 has zero variance when q is the exact posterior (next test).
    """
    vae = random_vae(2, scale=0.2)
    mu, var = torch.tensor([[mu]], dtype=F64), torch.tensor([[var]], dtype=F64)
    g = gen(4)
    chunks, size = 200, 50
    xs = X_BINARY.expand(size, -1)
    eq1, eq2 = [], []
    with torch.no_grad():
        for _ in range(chunks):
            z = mu + var.sqrt() * randn(size, 1, g=g)
            p = vae.decoder(z)
            eq2.append(vae.elbo_loss(z, mu.expand(size, 1), var.expand(size, 1), xs, p))
            eq1.append((VAE.logpdf_bernoulli(xs, p) - analytic_kl_to_standard_normal(mu, var)).mean())
    eq1, eq2 = torch.stack(eq1), torch.stack(eq2)
    difference = eq2 - eq1
    assert_mc(difference.mean(), 0.0, difference.std() / math.sqrt(chunks), "E[Eq. 2] - E[Eq. 1]")
    assert eq1.var() < 0.5 * eq2.var(), f"Var(Eq. 1) {eq1.var():.4f} vs Var(Eq. 2) {eq2.var():.4f}"


def test_eq2_has_zero_variance_when_q_is_the_exact_posterior():
    """Correction to "Eq. 1 has lower variance": if q(z|x) = p(z|x), Eq. 2's integrand log p(x,z) - log q(z|x)
    equals log p(x) for every z (zero variance), while Eq. 1's log p(x|z) - KL still varies with z.

    Linear-Gaussian model z ~ N(0, 1), x|z ~ N(w z + b, tau^2 I) (posterior Gaussian, evidence N(b, w w^T +
    tau^2 I) from torch's MultivariateNormal); densities through VAE.logpdf_diagonal_gaussian.
    """
    w, b, tau2 = (torch.tensor(v, dtype=F64) for v in ([1.5, -0.7, 0.4], [0.2, 0.0, -0.3], 0.25))
    x = torch.tensor([[1.0, -0.5, 0.1]], dtype=F64)
    post_var = 1.0 / (1.0 + (w @ w) / tau2)
    post_mu = post_var * (w @ (x[0] - b)) / tau2
    mu, var = post_mu.view(1, 1), post_var.view(1, 1)
    z = mu + var.sqrt() * randn(2000, 1, g=gen(5))
    log_lik = VAE.logpdf_diagonal_gaussian(x, z * w + b, tau2.expand(3))
    eq2_integrand = (log_lik + VAE.logpdf_diagonal_gaussian(z, torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64))
                     - VAE.logpdf_diagonal_gaussian(z, mu, var))
    eq1_integrand = log_lik - analytic_kl_to_standard_normal(mu, var)
    log_px = MultivariateNormal(b, torch.outer(w, w) + tau2 * torch.eye(3, dtype=F64)).log_prob(x[0])
    torch.testing.assert_close(eq2_integrand, log_px.expand(2000), rtol=0, atol=1e-10)
    assert eq1_integrand.std() > 0.5
    assert_mc(eq1_integrand.mean(), log_px, eq1_integrand.std() / math.sqrt(2000), "Eq. 1 at the posterior")


# ----------------------------------------------------------------------------------------------------
# KL divergence: properties, equal-variance Gaussians, the diagonal Gaussian against N(0, I).

KL_GRID = grid(-40.0, 40.0, 4001)


def quadrature_kl(q: Normal, p: Normal) -> torch.Tensor:
    """KL(q || p) = ∫ q log(q / p) for (batched) 1-D normals, by quadrature on KL_GRID (batch dims first)."""
    x = KL_GRID.view(-1, *([1] * len(q.batch_shape)))
    log_q = q.log_prob(x)
    return integrate(log_q.exp() * (log_q - p.log_prob(x)), KL_GRID, dim=0)


def test_kl_is_nonnegative_zero_only_on_itself_and_not_symmetric():
    """KL(q || p) >= 0 with equality iff q = p, and in general KL(q || p) != KL(p || q).

    500 random pairs of distributions on 10 states (Dirichlet(1)) and 200 random pairs of 1-D normals (KL by
    quadrature): all KLs are positive, KL(q || q) = 0, and the two directions differ (e.g. N(0,1) vs N(1,2^2):
    0.443 one way, 1.307 the other).
    """
    g = gen(6)
    e = -torch.rand(2, 500, 10, generator=g, dtype=F64).log()
    q, p = e / e.sum(-1, keepdim=True)
    kl = lambda a, c: (a * (a.log() - c.log())).sum(-1)  # noqa: E731
    assert (kl(q, p) > 1e-6).all() and (kl(p, q) > 1e-6).all()
    assert kl(q, q).abs().max() < 1e-15
    assert ((kl(q, p) - kl(p, q)).abs() > 1e-6).float().mean() > 0.99

    means, log_stds = randn(2, 200, g=g), 0.5 * randn(2, 200, g=g)
    q_normal, p_normal = normal(means[0], log_stds[0].exp()), normal(means[1], log_stds[1].exp())
    forward, backward = quadrature_kl(q_normal, p_normal), quadrature_kl(p_normal, q_normal)
    assert (forward > 0).all() and (backward > 0).all()
    assert quadrature_kl(q_normal, q_normal).abs().max() < 1e-10
    assert ((forward - backward).abs() > 1e-3).float().mean() > 0.9
    pair = quadrature_kl(normal(0.0, 1.0), normal(1.0, 2.0)), quadrature_kl(normal(1.0, 2.0), normal(0.0, 1.0))
    assert abs(pair[0] - (math.log(2) + 2 / 8 - 0.5)) < 1e-9 and abs(pair[1] - (-math.log(2) + 5 / 2 - 0.5)) < 1e-9


def test_kl_between_equal_variance_gaussians_is_squared_mean_gap_over_two_sigma_square():
    """KL(N(mu_phi, sigma^2 I) || N(mu_p, sigma^2 I)) = sum_d (mu_phi,d - mu_p,d)^2 / (2 sigma_d^2) (per dimension).

    Reference: quadrature per dimension, summed (exact to ~1e-10; a factor 2 or a missing square fails).
    """
    g = gen(7)
    mu_phi, mu_p, sigma = randn(4, g=g), randn(4, g=g), 0.3 + torch.rand(4, generator=g, dtype=F64)
    reference = quadrature_kl(normal(mu_phi, sigma), normal(mu_p, sigma)).sum()
    claimed = ((mu_phi - mu_p) ** 2 / (2 * sigma ** 2)).sum()
    torch.testing.assert_close(claimed, reference, rtol=1e-9, atol=1e-10)


def test_kl_of_diagonal_gaussian_to_standard_normal():
    """KL(N(mu, diag sigma^2) || N(0, I)) = 1/2 sum_d (sigma_d^2 + mu_d^2 - 1 - log sigma_d^2).

    References: quadrature per dimension (to 1e-9), and a Monte Carlo E_q[log q - log p] with the project's
    VAE.logpdf_diagonal_gaussian (200 000 samples, 5 standard errors ~ 0.014 against a KL of ~1).
    """
    g = gen(8)
    mu, var = randn(3, g=g), (0.5 * randn(3, g=g)).exp()
    claimed = analytic_kl_to_standard_normal(mu, var)
    torch.testing.assert_close(claimed, quadrature_kl(normal(mu, var.sqrt()), normal(0.0, 1.0)).sum(),
                               rtol=1e-9, atol=1e-10)
    z = mu + var.sqrt() * randn(200_000, 3, g=g)
    log_ratio = (VAE.logpdf_diagonal_gaussian(z, mu, var)
                 - VAE.logpdf_diagonal_gaussian(z, torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)))
    assert_mc(log_ratio.mean(), claimed, log_ratio.std() / math.sqrt(len(z)), "Monte Carlo KL to N(0, I)")


# ----------------------------------------------------------------------------------------------------
# The Lagrangian: maximizing sum_z q(z) log p(x|z) - KL(q || p(z)) over the simplex.


def test_true_posterior_maximizes_lagrangian_objective_on_discrete_z():
    """On a discrete z, F(q) = sum_z q(z) log p(x|z) - KL(q || p(z)) with sum_z q(z) = 1 is maximized by the
    Lagrangian stationary point q*(z) = p(x|z) p(z) / p(x), the true posterior, and F(q*) = log p(x).

    Checks: the gradient of F at q* is the same for every z (so q* is stationary for F + lambda (sum q - 1),
    lambda = 1 - log p(x)); 20 000 random points of the simplex and mixtures of them with q* all score lower;
    a brute-force maximization over softmax logits (L-BFGS from a random start) lands on q*.
    """
    g = gen(9)
    states = 8
    e = -torch.rand(states, generator=g, dtype=F64).log()
    log_prior = (e / e.sum()).log()
    log_lik = -6 * torch.rand(states, generator=g, dtype=F64)

    def objective(q: torch.Tensor) -> torch.Tensor:
        return (q * log_lik).sum(-1) - (q * (q.log() - log_prior)).sum(-1)

    q_star = torch.exp(log_lik + log_prior - torch.logsumexp(log_lik + log_prior, 0))
    log_px = torch.logsumexp(log_lik + log_prior, 0)
    best = objective(q_star)
    assert abs(best - log_px) < 1e-12

    q = q_star.clone().requires_grad_()
    (grad,) = torch.autograd.grad(objective(q), q)
    torch.testing.assert_close(grad, (log_px - 1).expand(states), rtol=0, atol=1e-12)

    e = -torch.rand(20_000, states, generator=g, dtype=F64).log()
    random_points = e / e.sum(-1, keepdim=True)
    assert (objective(random_points) < best).all()
    for t in (1e-4, 1e-2, 0.3):
        assert (objective((1 - t) * q_star + t * random_points) < best).all()

    logits = randn(states, g=g).requires_grad_()
    optimizer = torch.optim.LBFGS([logits], max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -objective(torch.softmax(logits, 0))
        loss.backward()
        return loss

    optimizer.step(closure)
    torch.testing.assert_close(torch.softmax(logits, 0).detach(), q_star, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# GAN: the optimal discriminator, the generator objective at it (JSD), its minimum, and saturation.

P_DATA = ((0.4, 0.6), (-1.5, 1.5), (0.6, 1.0))
P_G = ((1.0,), (0.3,), (1.6,))
GAN_GRID = grid(-12.0, 20.0, 6401)


def discriminator_objective(log_d, log_one_minus_d, log_p_data, log_p_g, x=GAN_GRID) -> torch.Tensor:
    """V(D, G) = E_data[log D(x)] + E_G[log(1 - D(x))] by quadrature (batch dims first, x last)."""
    return integrate(log_p_data.exp() * log_d + log_p_g.exp() * log_one_minus_d, x)


def optimal_log_d(log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log D*(x), log(1 - D*(x)) for the claimed D* = p_data / (p_data + p_G), in a stable log form."""
    log_sum = torch.logaddexp(log_p_data, log_p_g)
    return log_p_data - log_sum, log_p_g - log_sum


def test_optimal_discriminator_maximizes_discriminator_objective():
    """For a fixed generator, D*(x) = p_data(x) / (p_data(x) + p_G(x)) maximizes V(D) = E_data log D + E_G log(1-D).

    Pointwise brute force: at 201 points x in [-5, 5], the best of 20 001 values of D in (0, 1) is D*(x) to within
    the search spacing. Functional: 300 random smooth perturbations of D* (in logit space, amplitudes 1e-3 to 1)
    all give a lower V by quadrature.
    """
    x = grid(-5.0, 5.0, 201)
    p_data, p_g = mixture_log_density(x, P_DATA).exp(), mixture_log_density(x, P_G).exp()
    candidates = grid(0.0, 1.0, 20003)[1:-1]
    values = p_data[:, None] * candidates.log() + p_g[:, None] * (1 - candidates).log()
    best = candidates[values.argmax(1)]
    assert (best - p_data / (p_data + p_g)).abs().max() <= candidates[1] - candidates[0]

    log_p_data, log_p_g = mixture_log_density(GAN_GRID, P_DATA), mixture_log_density(GAN_GRID, P_G)
    log_d, log_1md = optimal_log_d(log_p_data, log_p_g)
    v_star = discriminator_objective(log_d, log_1md, log_p_data, log_p_g)
    g = gen(10)
    amplitude = 10 ** (-3 * torch.rand(300, 1, generator=g, dtype=F64))
    frequency, phase, offset = torch.rand(300, 1, generator=g, dtype=F64) * 3, randn(300, 1, g=g), randn(300, 1, g=g)
    logits = (log_d - log_1md) + amplitude * (torch.sin(frequency * GAN_GRID + phase) + 0.3 * offset)
    v = discriminator_objective(nn.functional.logsigmoid(logits), nn.functional.logsigmoid(-logits),
                                log_p_data, log_p_g)
    assert (v < v_star).all()


@pytest.mark.parametrize("p_g, jsd_range", [(P_G, (0.02, 0.5)), (P_DATA, (0.0, 0.0)),
                                            (((1.0,), (14.0,), (0.5,)), (0.69, 0.6932))],
                         ids=["overlapping", "equal", "disjoint"])
def test_generator_objective_at_optimal_discriminator_is_jsd_minus_log4(p_g, jsd_range):
    """C(G) = V(D*, G) = -log 4 + 2 JSD(p_data || p_G).

    V(D*, G) by quadrature; JSD = 1/2 KL(p_data || m) + 1/2 KL(p_G || m), m = (p_data + p_G)/2, by Monte Carlo
    from 100 000 samples of each (tolerance 5 standard errors, ~0.006; a missing factor 2 is off by JSD ~ 0.04,
    over 30 SE, in the overlapping case). Equal densities give -log 4; disjoint ones JSD = log 2 and C(G) = 0.
    """
    log_p_data, log_p_g = mixture_log_density(GAN_GRID, P_DATA), mixture_log_density(GAN_GRID, p_g)
    c_of_g = discriminator_objective(*optimal_log_d(log_p_data, log_p_g), log_p_data, log_p_g)

    g = gen(11)
    n = 100_000
    terms = []
    for own, other in ((P_DATA, p_g), (p_g, P_DATA)):
        s = mixture_sample(n, own, g)
        log_own, log_other = mixture_log_density(s, own), mixture_log_density(s, other)
        terms.append(log_own - (torch.logaddexp(log_own, log_other) - math.log(2)))  # log(own / m)
    jsd = 0.5 * (terms[0].mean() + terms[1].mean())
    jsd_se = 0.5 * math.sqrt(terms[0].var() / n + terms[1].var() / n) + 1e-12
    assert jsd_range[0] - 1e-9 <= jsd <= jsd_range[1] + 1e-9
    assert_mc(c_of_g, -math.log(4) + 2 * jsd, 2 * jsd_se, "C(G) vs -log 4 + 2 JSD")


def test_generator_objective_is_minimized_when_generator_matches_data():
    """C(G) >= -log 4 with equality iff p_G = p_data: brute force over Gaussian generators N(mu, s^2).

    p_data = N(1, 0.8^2); over a 41 x 25 grid of (mu, s) containing (1, 0.8), C(G) by quadrature is smallest
    exactly at the data's parameters, equals -log 4 there (to 1e-9), and is above it everywhere else.
    """
    x = grid(-10.0, 10.0, 4001)
    mus, stds = grid(-1.0, 3.0, 41), grid(0.4, 1.6, 25)
    mu, s = torch.meshgrid(mus, stds, indexing="ij")
    log_p_data = normal(1.0, 0.8).log_prob(x)
    log_p_g = normal(mu[..., None], s[..., None]).log_prob(x)                    # (41, 25, 4001)
    c_of_g = discriminator_objective(*optimal_log_d(log_p_data, log_p_g), log_p_data, log_p_g, x)
    best = divmod(c_of_g.argmin().item(), len(stds))
    assert (mus[best[0]].item(), stds[best[1]].item()) == pytest.approx((1.0, 0.8), abs=1e-12)
    assert abs(c_of_g.min() + math.log(4)) < 1e-9
    others = c_of_g.flatten()[torch.arange(c_of_g.numel()) != c_of_g.argmin()]
    assert (others > -math.log(4) + 1e-6).all()


def test_saturating_generator_gradient_vanishes_when_discriminator_is_confident():
    """With D(x) = sigmoid(l(x)) confident that fakes are fake (D(G(z)) ~ 1e-7), the saturating generator loss
    E log(1 - D(G(z))) has a vanishing gradient (~ D * dl), the non-saturating -E log D(G(z)) does not (~ dl).

    Generator G(z) = a z + b, discriminator logit l(x) = 4 x; gradients w.r.t. (a, b) by autograd, cross-checked
    by central finite differences. Control: where D is unsure (D(G(z)) ~ 1/2) the two gradients are comparable.
    """
    z = randn(1000, g=gen(12))

    def losses(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = 4.0 * (theta[0] * z + theta[1])
        return nn.functional.logsigmoid(-logit).mean(), -nn.functional.logsigmoid(logit).mean()

    def gradients(theta: torch.Tensor) -> list[torch.Tensor]:
        leaves = [theta.clone().requires_grad_() for _ in range(2)]
        return [torch.autograd.grad(losses(leaf)[index], leaf)[0] for index, leaf in enumerate(leaves)]

    confident, unsure = torch.tensor([0.5, -4.0], dtype=F64), torch.tensor([0.5, 0.0], dtype=F64)
    saturating, non_saturating = gradients(confident)
    h = 1e-6
    for index, grad in enumerate((saturating, non_saturating)):
        step = torch.eye(2, dtype=F64) * h
        finite = torch.stack([(losses(confident + step[i])[index] - losses(confident - step[i])[index]) / (2 * h)
                              for i in range(2)])
        torch.testing.assert_close(grad, finite, rtol=1e-5, atol=1e-14)
    assert saturating.norm() < 1e-4 * non_saturating.norm()
    assert non_saturating[1] < -3.9                     # ~ -4: descent pushes the fakes towards the real side
    assert saturating[1] < 0                            # the same direction, but ~1e-7 of the size
    saturating, non_saturating = gradients(unsure)
    assert 0.3 < saturating.norm() / non_saturating.norm() < 3


# ----------------------------------------------------------------------------------------------------
# Diffusion: the forward marginal, the forward-process posterior, Tweedie, variance preserving, DSM vs ESM,
# the inpainting score. DDPM's linear schedule beta_t = 1e-4 ... 0.02, T = 1000 (t is 1-based below).

BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
ALPHAS_BAR = torch.cumprod(1 - BETAS, 0)


def alpha_bar(t: int) -> float:
    return 1.0 if t == 0 else ALPHAS_BAR[t - 1].item()


def test_forward_chain_marginal_is_closed_form_gaussian():
    """Simulating x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps from a fixed x_0 gives
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).

    10 000 simulated chains in 2-D; at t = 1, 10, 100, 300, 1000: mean, per-coordinate variance, covariance and
    kurtosis (Gaussian: 3) each within 5 standard errors. (alpha_bar_t x_0 for the mean would be 30 SE off at
    t = 100.)
    """
    g = gen(13)
    n, x0 = 10_000, torch.tensor([2.0, -1.0], dtype=F64)
    x = x0.expand(n, 2).clone()
    for t in range(1, 1001):
        beta = BETAS[t - 1]
        x = (1 - beta).sqrt() * x + beta.sqrt() * randn(n, 2, g=g)
        if t in (1, 10, 100, 300, 1000):
            mean, var = math.sqrt(alpha_bar(t)) * x0, 1 - alpha_bar(t)
            centered = x - mean
            assert_mc(x.mean(0), mean, x.std(0) / math.sqrt(n), f"mean at t={t}")
            assert_mc((centered ** 2).mean(0), var, (centered ** 2).std(0) / math.sqrt(n), f"variance at t={t}")
            product = centered[:, 0] * centered[:, 1]
            assert_mc(product.mean(), 0.0, product.std() / math.sqrt(n), f"covariance at t={t}")
            standardized = (centered / math.sqrt(var)) ** 4
            assert_mc(standardized.mean(0), 3.0, standardized.std(0) / math.sqrt(n), f"kurtosis at t={t}")


@pytest.mark.parametrize("t, x0, noise", [(2, 0.7, 0.3), (10, -1.2, 1.5), (100, 2.0, -0.8), (999, 0.4, 1.0)])
def test_forward_posterior_mean_and_variance_match_bayes_on_a_grid(t, x0, noise):
    """q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde) with
    mu_tilde = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t and
    beta_tilde = (1 - abar_{t-1}) / (1 - abar_t) beta_t.

    Reference: Bayes on a 400 001-point grid of x_{t-1}, q(x_{t-1} | x_0) q(x_t | x_{t-1}), normalized by
    quadrature; its mean and variance agree to 1e-6 relative.
    """
    abar, abar_prev, beta = alpha_bar(t), alpha_bar(t - 1), BETAS[t - 1].item()
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * noise
    x_prev = grid(-8.0, 8.0, 400_001)
    log_joint = (normal(math.sqrt(abar_prev) * x0, math.sqrt(1 - abar_prev)).log_prob(x_prev)
                 + normal(math.sqrt(1 - beta) * x_prev, math.sqrt(beta)).log_prob(torch.tensor(x_t, dtype=F64)))
    weights = torch.exp(log_joint - log_joint.max())
    weights = weights / integrate(weights, x_prev)
    mean = integrate(x_prev * weights, x_prev)
    var = integrate((x_prev - mean) ** 2 * weights, x_prev)
    mu_tilde = (math.sqrt(abar_prev) * beta / (1 - abar) * x0
                + math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar) * x_t)
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    assert mean.item() == pytest.approx(mu_tilde, rel=1e-6, abs=1e-9)
    assert var.item() == pytest.approx(beta_tilde, rel=1e-6)


def test_perturbed_score_is_conditional_mean_of_minus_scaled_noise():
    """Tweedie / denoising score matching: grad log q_t(x_t) = E[-eps / sqrt(1 - abar_t) | x_t], where
    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps; equivalently E[x_0 | x_t] = (x_t + (1 - abar_t) grad log q_t) /
    sqrt(abar_t). The expectation is conditional on x_t: unconditionally both sides have mean 0.

    Data x_0 ~ N(1.5, 0.7^2), so the conditional means are exactly linear in x_t: least squares of -eps/sqrt(1-abar)
    (and of x_0) on (1, x_t) over 200 000 samples estimates them with known standard errors. Reference score: the
    density q_t = ∫ p(x_0) N(x_t; sqrt(abar) x_0, 1 - abar) dx_0 and its derivative by quadrature (no closed form
    used). Compared at 5 points across the bulk, within 5 standard errors of the regression's prediction.
    """
    g = gen(14)
    n, m, s = 200_000, 1.5, 0.7
    x0_grid = grid(m - 12 * s, m + 12 * s, 8001)
    log_p0 = normal(m, s).log_prob(x0_grid)
    for t in (50, 300, 800):
        abar = alpha_bar(t)
        x0, eps = m + s * randn(n, g=g), randn(n, g=g)
        x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
        design = torch.stack([torch.ones(n, dtype=F64), x_t], 1)
        points = math.sqrt(abar) * m + math.sqrt(abar * s ** 2 + 1 - abar) * grid(-2.0, 2.0, 5)
        kernel = torch.exp(log_p0 + normal(math.sqrt(abar) * x0_grid, math.sqrt(1 - abar)).log_prob(points[:, None]))
        density = integrate(kernel, x0_grid)
        score = integrate(kernel * -(points[:, None] - math.sqrt(abar) * x0_grid) / (1 - abar), x0_grid) / density
        posterior_mean_x0 = (points + (1 - abar) * score) / math.sqrt(abar)
        for target, reference, name in ((-eps / math.sqrt(1 - abar), score, "score"),
                                        (x0, posterior_mean_x0, "E[x_0 | x_t]")):
            coef = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
            residual = target - design @ coef
            covariance = residual.var() * torch.linalg.inv(design.T @ design)
            at_points = torch.stack([torch.ones_like(points), points], 1)
            se = torch.sqrt(((at_points @ covariance) * at_points).sum(1))
            assert_mc(at_points @ coef, reference, se, f"{name} at t={t}")


def test_variance_preserving_scale_keeps_unit_variance():
    """x_t = a_t x_{t-1} + sigma_t eps keeps Var(x_t) = 1 for unit-variance data iff a_t = sqrt(1 - sigma_t^2)
    (Var(x_t) = a_t^2 Var(x_{t-1}) + sigma_t^2), whatever the data's shape.

    Forward simulation of 30 000 bimodal, non-Gaussian unit-variance points through 100 steps with sigma_t^2
    from 0.01 to 0.5: the sample variance stays within 5 standard errors of 1 at every step. Control: the
    tempting a_t = 1 - sigma_t^2 drifts to a variance of ~0.67, about 50 standard errors below 1 (asserted: > 20).
    """
    g = gen(15)
    n = 30_000
    signs = torch.where(torch.rand(n, generator=g, dtype=F64) < 0.5, -1.0, 1.0)
    data = 0.95 * signs + math.sqrt(1 - 0.95 ** 2) * randn(n, g=g)       # mean 0, variance 1, kurtosis ~1.2
    sigma2 = grid(0.01, 0.5, 100)
    vp, naive = data.clone(), data.clone()
    for s2 in sigma2:
        noise = randn(n, g=g)
        vp = torch.sqrt(1 - s2) * vp + s2.sqrt() * noise
        naive = (1 - s2) * naive + s2.sqrt() * noise
        assert_mc((vp ** 2).mean(), 1.0, (vp ** 2).std() / math.sqrt(n), "variance-preserving chain")
    assert (1.0 - (naive ** 2).mean()) / ((naive ** 2).std() / math.sqrt(n)) > 20


# Score matching on a 1-D mixture: J_1 (explicit) = 1/2 E_{q_sigma}[(s(x~) - grad log q_sigma(x~))^2] and
# J_2 (denoising) = 1/2 E_{x, x~}[(s(x~) + (x~ - x)/sigma^2)^2], x~ = x + sigma eps.
SM_DATA, SM_SIGMA = ((0.3, 0.7), (-2.0, 1.5), (0.5, 0.8)), 0.5
SM_NOISY = grid(-9.0, 9.0, 901)
SM_CLEAN = grid(-7.0, 7.0, 701)


def small_score_model(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    g = gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(randn(*p.shape, g=g))
    return model


def perturbed_log_density(x: torch.Tensor) -> torch.Tensor:
    weights, means, stds = SM_DATA
    return mixture_log_density(x, (weights, means, tuple(math.sqrt(v ** 2 + SM_SIGMA ** 2) for v in stds)))


def explicit_score_matching(model: nn.Module) -> torch.Tensor:
    """J_1 by quadrature; grad log q_sigma by autograd of the perturbed mixture's log-density."""
    x = SM_NOISY.clone().requires_grad_()
    log_q = perturbed_log_density(x)
    (true_score,) = torch.autograd.grad(log_q.sum(), x)
    error = model(SM_NOISY[:, None])[:, 0] - true_score
    return integrate(log_q.detach().exp() * 0.5 * error ** 2, SM_NOISY)


def denoising_score_matching(model: nn.Module, noise_power: float = 2.0) -> torch.Tensor:
    """J_2 by 2-D quadrature over (x~, x); noise_power = 1 gives the wrong target (x~ - x)/sigma (a control)."""
    joint = torch.exp(mixture_log_density(SM_CLEAN, SM_DATA)[None, :]
                      + normal(SM_CLEAN[None, :], SM_SIGMA).log_prob(SM_NOISY[:, None]))  # (noisy, clean)
    target = -(SM_NOISY[:, None] - SM_CLEAN[None, :]) / SM_SIGMA ** noise_power
    error = model(SM_NOISY[:, None]) - target
    return integrate(integrate(joint * 0.5 * error ** 2, SM_CLEAN, dim=1), SM_NOISY)


def parameter_gradient(loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
    return torch.cat([grad.flatten() for grad in torch.autograd.grad(loss, list(model.parameters()))])


def test_denoising_score_matching_equals_explicit_up_to_a_constant():
    """J_2(theta) = J_1(theta) + C with C = 1/2 (1/sigma^2 - E_q[(grad log q_sigma)^2]) independent of theta, so
    DSM and ESM have the same parameter gradients (Vincent 2011).

    1-D two-Gaussian mixture, sigma = 0.5, a 1-16-1 tanh MLP at two random parameter settings. Both objectives by
    quadrature: the gradients agree to 1e-7 relative and J_2 - J_1 is the same C (to 1e-9) at both settings.
    Control: the target (x~ - x)/sigma (a missing sigma) changes the gradient by > 1e-3 relative, far beyond it.
    """
    x = SM_NOISY.clone().requires_grad_()
    log_q = perturbed_log_density(x)
    (true_score,) = torch.autograd.grad(log_q.sum(), x)
    constant = 0.5 * (1 / SM_SIGMA ** 2 - integrate(log_q.detach().exp() * true_score ** 2, SM_NOISY))
    for seed in (16, 17):
        model = small_score_model(seed)
        j1, j2 = explicit_score_matching(model), denoising_score_matching(model)
        assert abs((j2 - j1).item() - constant.item()) < 1e-9
        grad1, grad2 = parameter_gradient(j1, model), parameter_gradient(j2, model)
        torch.testing.assert_close(grad2, grad1, rtol=1e-7, atol=1e-10)
        wrong = parameter_gradient(denoising_score_matching(model, noise_power=1.0), model)
        assert (wrong - grad1).norm() > 1e-3 * grad1.norm()  # 10 000 times the tolerance above


def test_denoising_score_matching_minibatch_gradient_is_unbiased_for_explicit_gradient():
    """The Monte Carlo DSM loss used in training, mean of 1/2 (s(x + sigma eps) + eps/sigma)^2 over samples,
    has an expected parameter gradient equal to grad J_1 (the quadrature value above).

    100 independent minibatches of 2 000 samples: each of the 49 gradient components is within 5 standard errors
    (of the mean over minibatches) of the quadrature gradient of J_1.
    """
    model = small_score_model(16)
    reference = parameter_gradient(explicit_score_matching(model), model)
    g = gen(18)
    estimates = []
    for _ in range(100):
        eps = randn(2000, g=g)
        noisy = mixture_sample(2000, SM_DATA, g) + SM_SIGMA * eps
        loss = (0.5 * (model(noisy[:, None])[:, 0] + eps / SM_SIGMA) ** 2).mean()
        estimates.append(parameter_gradient(loss, model))
    estimates = torch.stack(estimates)
    assert_mc(estimates.mean(0), reference, estimates.std(0) / math.sqrt(len(estimates)), "DSM minibatch gradient")


def test_inpainting_conditional_score_adds_masked_residual():
    """For a mask M (1 = known) and the likelihood p(x_known | x) ∝ exp(-||(x - x_known) ⊙ M||^2), i.e. known pixels
    observed with Gaussian noise of variance 1/2, the conditional score is
    grad_x log p(x | x_known) = grad_x log p(x) - 2 (x - x_known) ⊙ M.

    (For a binary mask; a soft mask gives -2 M^2 ⊙ (x - x_known); noise variance s^2, -M ⊙ (x - x_known) / s^2.)
    Reference: the posterior p(x) p(x_known | x) / p(x_known) with the evidence by 2-D quadrature, its log
    differentiated by central finite differences at 10 points (3 fixed, 7 random; to 1e-6); the prior score by
    autograd.
    Control: the term without the factor 2 misses by O(1).
    """
    weights, means, stds = (torch.tensor(v, dtype=F64) for v in
                            ((0.5, 0.5), ((-1.0, 1.0), (2.0, 0.0)), ((0.7, 0.5), (0.6, 1.2))))
    mask, known = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.8, 0.0], dtype=F64)

    def log_prior(x: torch.Tensor) -> torch.Tensor:  # x (..., 2)
        return torch.logsumexp(normal(means, stds).log_prob(x[..., None, :]).sum(-1) + weights.log(), -1)

    def log_likelihood(x: torch.Tensor) -> torch.Tensor:
        return normal(x, math.sqrt(0.5)).log_prob(known).mul(mask).sum(-1)

    axis = grid(-8.0, 8.0, 801)
    plane = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)
    joint = torch.exp(log_prior(plane) + log_likelihood(plane))
    log_evidence = integrate(integrate(joint, axis, dim=1), axis).log()

    def log_posterior(x: torch.Tensor) -> torch.Tensor:
        return log_prior(x) + log_likelihood(x) - log_evidence

    points = torch.tensor([[0.5, 0.5], [-1.0, 1.0], [2.0, 0.0]], dtype=F64)
    points = torch.cat([points, 2 * randn(7, 2, g=gen(19))])
    h, step = 1e-5, torch.eye(2, dtype=F64) * 1e-5
    finite = torch.stack([(log_posterior(points + step[i]) - log_posterior(points - step[i])) / (2 * h)
                          for i in range(2)], -1)
    x = points.clone().requires_grad_()
    (prior_score,) = torch.autograd.grad(log_prior(x).sum(), x)
    claimed = prior_score - 2 * (points - known) * mask
    torch.testing.assert_close(finite, claimed, rtol=0, atol=1e-6)
    assert ((prior_score - (points - known) * mask) - finite).abs().max() > 0.1


# ----------------------------------------------------------------------------------------------------
# Langevin dynamics (Algorithm 1): x <- x + (alpha_i / 2) score(x, sigma_i) + sqrt(alpha_i) z with
# alpha_i = eps sigma_i^2 / sigma_L^2, annealed from the largest noise level to the smallest (sigma_L).


def annealed_langevin(x: torch.Tensor, score, sigmas: torch.Tensor, steps: int, eps: float,
                      g: torch.Generator) -> torch.Tensor:
    smallest = sigmas.min()
    for sigma in sigmas.sort(descending=True).values:
        alpha = (eps * sigma ** 2 / smallest ** 2).item()
        for _ in range(steps):
            x = x + 0.5 * alpha * score(x, sigma) + math.sqrt(alpha) * randn(*x.shape, g=g)
    return x


def geometric(sigma_max: float, sigma_min: float, levels: int) -> torch.Tensor:
    return torch.exp(grid(math.log(sigma_max), math.log(sigma_min), levels))


def test_annealed_langevin_with_exact_score_converges_to_gaussian_target():
    """Annealed Langevin dynamics with the exact perturbed score -(x - m) / (s^2 + sigma^2) of a Gaussian target
    N(m, diag s^2), started far away, ends at the target's mean and variance.

    2-D target m = (2, -1), s = (0.5, 1.5); 16 000 chains from U[-20, 20]^2; 10 levels from 10 to 0.01, 200 steps
    each, eps = 2e-4. Tolerances: means within 5 standard errors; variances within 6 % relative (1 SE = 1.1 %;
    the discretization and annealing bias, computed from the exact linear recursion, is 0.7 %). A missing 1/2
    in the drift or sqrt(alpha/2) noise halves the variance; annealing the wrong way leaves s^2 + 100.
    """
    g = gen(20)
    m, s = torch.tensor([2.0, -1.0], dtype=F64), torch.tensor([0.5, 1.5], dtype=F64)
    start = 40 * torch.rand(16_000, 2, generator=g, dtype=F64) - 20
    x = annealed_langevin(start, lambda x, sigma: -(x - m) / (s ** 2 + sigma ** 2), geometric(10.0, 0.01, 10),
                          steps=200, eps=2e-4, g=g)
    assert_mc(x.mean(0), m, s / math.sqrt(len(x)), "annealed Langevin mean")
    assert ((x.var(0) / s ** 2 - 1).abs() < 0.06).all(), f"variances {x.var(0).tolist()} vs {(s ** 2).tolist()}"


def two_mode_score(x: torch.Tensor, sigma) -> torch.Tensor:
    """Score of 0.8 N(5, 1) + 0.2 N(-5, 1) convolved with N(0, sigma^2): (1-D; the NCSN toy example)."""
    var = 1 + sigma ** 2
    right = torch.sigmoid(math.log(0.8 / 0.2) + ((x + 5) ** 2 - (x - 5) ** 2) / (2 * var))  # P(right mode | x)
    return (right * (5 - x) + (1 - right) * (-5 - x)) / var


def test_plain_langevin_mixes_too_slowly_where_annealed_langevin_recovers_mode_weights():
    """On 0.8 N(5, 1) + 0.2 N(-5, 1), plain Langevin with the exact data score and a small step, from a bad start
    (uniform on [-8, 8]), keeps the split it started with (~1/2 : 1/2) after 1 000 steps, because crossing the
    low-density gap between the modes takes exponentially long; annealed Langevin recovers the 0.8 weight.

    10 000 chains. Tolerances: annealed weight within 0.04 of 0.8 (1 SE = 0.004; the annealing bias is ~0.02);
    plain weight within 0.05 of its starting split and > 0.2 away from 0.8. Control: the same plain chain started
    from the target keeps 0.8 — the target is its stationary law; the failure is mixing, not bias.
    """
    g = gen(21)
    n = 10_000
    start = 16 * torch.rand(n, generator=g, dtype=F64) - 8
    x = start.clone()
    for _ in range(1000):
        x = x + 0.05 * two_mode_score(x, 0.0) + math.sqrt(0.1) * randn(n, g=g)
    plain, initial = (x > 0).double().mean().item(), (start > 0).double().mean().item()
    assert abs(plain - initial) < 0.05 and abs(plain - 0.8) > 0.2

    annealed = annealed_langevin(start.clone(), two_mode_score, geometric(10.0, 0.1, 10), steps=100, eps=5e-3, g=g)
    assert abs((annealed > 0).double().mean().item() - 0.8) < 0.04

    x = torch.where(torch.rand(n, generator=g, dtype=F64) < 0.8, 5.0, -5.0) + randn(n, g=g)
    for _ in range(1000):
        x = x + 0.05 * two_mode_score(x, 0.0) + math.sqrt(0.1) * randn(n, g=g)
    assert abs((x > 0).double().mean().item() - 0.8) < SE * math.sqrt(0.8 * 0.2 / n)
