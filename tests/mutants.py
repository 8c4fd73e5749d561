"""Edited copies of the reference scripts, for the autograder's self-check.

A mutant is the reference with one deliberate mistake, the kind students make: test_autograder.py grades it and
checks that it loses points on each of its `rows`. An equivalent is the reference with a different but correct
answer (another numerically safe log-likelihood, a plain course-style score network, ...): it must keep every
point of its `rows`. Each edit's `old` text must occur in the reference exactly once, so that an edit cannot
silently drift out of date when the reference changes.
"""
from __future__ import annotations

from typing import NamedTuple


class Edit(NamedTuple):
    script: str           # hw5_vae / hw5_diffusion / hw5_gan
    old: str              # text of the reference, replaced by `new`
    new: str
    rows: tuple           # rubric keys (tests/rubric.py) that must lose points (a mutant) or keep them all
    keeps: float | None = None  # a mutant's exact points left on its rows, where the rubric gives partial credit


VAE, DIFFUSION, GAN = "test_vae.py::", "test_diffusion.py::", "test_gan.py::"
ANNEALING = DIFFUSION + "test_4a_langevin_anneals_to_the_mixture_weights"
SAMPLES = DIFFUSION + "test_4c_langevin_samples_match_the_data"
LOSS_VALUE = DIFFUSION + "test_4a_denoising_loss_matches_a_hand_computation"

MUTANTS: dict[str, Edit] = {
    "vae: Gaussian log-density without the 1/2": Edit(
        "hw5_vae",
        "return -0.5 * (torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)",
        "return -(0.5 * torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)",
        (VAE + "test_2b_i_logpdf_diagonal_gaussian_matches_torch_distributions",)),
    "vae: Bernoulli log-likelihood with the wrong sign": Edit(
        "hw5_vae",
        "return (x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        "return -(x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        (VAE + "test_2b_ii_logpdf_bernoulli_matches_torch_distributions",)),
    "vae: no reparameterization": Edit(
        "hw5_vae",
        "return mu + torch.sqrt(sigma_square) * eps",
        "return (mu + torch.sqrt(sigma_square) * eps).detach()",
        (VAE + "test_2b_iii_sample_diagonal_gaussian_is_reparameterized",)),
    "vae: sample_Bernoulli returns the probabilities": Edit(
        "hw5_vae",
        "return torch.bernoulli(p).to(torch.float32)",
        "return p.to(torch.float32)",
        (VAE + "test_2b_iv_sample_bernoulli_values_dtype_and_mean",)),
    "vae: ELBO adds log q instead of subtracting it": Edit(
        "hw5_vae",
        "return (log_p_x + log_p_z - log_q).mean()",
        "return (log_p_x + log_p_z + log_q).mean()",
        (VAE + "test_2c_elbo_loss_matches_torch_distributions",)),
    "vae: decoder with ReLU instead of tanh": Edit(
        "hw5_vae",
        "return self.fc2_dec(torch.tanh(self.fc1_dec(z)))",
        "return self.fc2_dec(torch.relu(self.fc1_dec(z)))",
        (VAE + "test_2a_decoder_architecture_and_forward",)),
    "vae: interpolation at alpha = 0.5 only": Edit(
        "hw5_vae",
        "ALPHAS = [k / 10 for k in range(11)]",
        "ALPHAS = [0.5]",
        (VAE + "test_2e_iii_interpolation_three_pairs_eleven_alphas",), keeps=1.5),
    "diffusion: σ annealed the wrong way (smallest first)": Edit(
        "hw5_diffusion",
        "levels = torch.as_tensor(noise_levels, dtype=x_mod.dtype).flatten().sort(descending=True).values",
        "levels = torch.as_tensor(noise_levels, dtype=x_mod.dtype).flatten().sort().values",
        (ANNEALING, SAMPLES)),
    "diffusion: denoising loss without the 1/σ²": Edit(
        "hw5_diffusion",
        "per_sample = (self.scorenet(perturbed, sigma_chosen) + (perturbed - samples) / sigma ** 2)",
        "per_sample = (self.scorenet(perturbed, sigma_chosen) + (perturbed - samples))",
        (LOSS_VALUE, DIFFUSION + "test_4a_denoising_loss_noise_has_standard_deviation_sigma")),
    "diffusion: denoising loss with the wrong sign": Edit(
        "hw5_diffusion",
        "per_sample = (self.scorenet(perturbed, sigma_chosen) + (perturbed - samples) / sigma ** 2)",
        "per_sample = (self.scorenet(perturbed, sigma_chosen) - (perturbed - samples) / sigma ** 2)",
        (LOSS_VALUE, DIFFUSION + "test_4b_score_field_points_toward_the_data", SAMPLES)),
    "diffusion: one σ per batch instead of per sample": Edit(
        "hw5_diffusion",
        "sigma_chosen = levels[torch.randint(len(levels), (len(samples),), device=samples.device)]",
        "sigma_chosen = levels[torch.randint(len(levels), (1,), device=samples.device)].expand(len(samples))",
        (DIFFUSION + "test_4a_denoising_loss_draws_sigma_per_sample",)),
    "diffusion: Langevin step size over the largest σ²": Edit(
        "hw5_diffusion",
        "sigma_min = levels[-1]\n",
        "sigma_min = levels[0]\n",
        (DIFFUSION + "test_4a_langevin_step_sizes_follow_algorithm_1",)),
    "diffusion: noise levels spaced linearly": Edit(
        "hw5_diffusion",
        "return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_levels))",
        "return torch.linspace(sigma_max, sigma_min, num_levels)",
        (DIFFUSION + "test_4a_generate_noise_levels_is_geometric",)),
    "gan: saturating generator loss log(1 - D(G(z)))": Edit(
        "hw5_gan",
        "return generator_loss(self.disc(self.gen(z)), self.loss)",
        "return generator_loss(self.disc(self.gen(z)), 'minimax')",
        (GAN + "test_gan_get_loss_g_is_the_nonsaturating_loss",)),
    "gan: discriminator labels swapped": Edit(
        "hw5_gan",
        "return (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))\n"
        "            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))",
        "return (F.binary_cross_entropy_with_logits(logits_real, torch.zeros_like(logits_real))\n"
        "            + F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake)))",
        (GAN + "test_gan_get_loss_d_matches_hand_computed_bce",
         GAN + "test_gan_short_training_produces_digit_like_samples")),
    "gan: DNet's pooling before its ReLU": Edit(
        "hw5_gan",
        "        self.relu2 = nn.ReLU()\n        self.pool2 = nn.MaxPool2d(2)",
        "        self.pool2 = nn.MaxPool2d(2)\n        self.relu2 = nn.ReLU()",
        (GAN + "test_gan_dnet_architecture",)),
    "gan: PyTorch's default initialization": Edit(
        "hw5_gan",
        "nn.init.kaiming_uniform_(layer.weight)",
        "nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))",
        (GAN + "test_gan_weight_init",)),
    "gan: GNet's LeakyReLU with the default slope": Edit(
        "hw5_gan",
        "self.lrelu2 = nn.LeakyReLU(0.2)",
        "self.lrelu2 = nn.LeakyReLU()",
        (GAN + "test_gan_gnet_architecture",)),
}

PLAIN_SCORE_NETWORK = '''class DiffusionModel(nn.Module):
    """A plain course-style score network: an MLP on (x, log σ), its output divided by σ."""

    def __init__(self, hidden_units: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden_units), nn.Softplus(), nn.Linear(hidden_units, hidden_units),
                                 nn.Softplus(), nn.Linear(hidden_units, 2))

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1).expand(len(x), 1)
        return self.net(torch.cat([x, sigma.log()], 1)) / sigma


class ScoreMatching:'''

EQUIVALENTS: dict[str, Edit] = {
    "vae: logpdf_bernoulli via logits": Edit(
        "hw5_vae",
        "return (x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        "return -nn.functional.binary_cross_entropy_with_logits(torch.logit(p, eps=1e-6), x, reduction='none')"
        ".sum(-1)",
        (VAE + "test_2b_ii_logpdf_bernoulli_matches_torch_distributions",
         VAE + "test_2b_ii_logpdf_bernoulli_is_finite_at_saturated_probabilities")),
    "vae: a Decoder with an extra Dropout(0) layer": Edit(
        "hw5_vae",
        "        self.fc2_dec = nn.Linear(hidden_units, data_dimension)\n\n"
        "    def forward(self, z: torch.Tensor) -> torch.Tensor:\n"
        "        return torch.sigmoid(self.logits(z))",
        "        self.fc2_dec = nn.Linear(hidden_units, data_dimension)\n        self.dropout = nn.Dropout(0.0)\n\n"
        "    def forward(self, z: torch.Tensor) -> torch.Tensor:\n"
        "        return torch.sigmoid(self.fc2_dec(self.dropout(torch.tanh(self.fc1_dec(z)))))",
        (VAE + "test_2a_decoder_architecture_and_forward",)),
    "diffusion: a plain course-style DiffusionModel (Softplus MLP on (x, log σ), output / σ)": Edit(
        "hw5_diffusion",
        "class ScoreMatching:",
        PLAIN_SCORE_NETWORK,
        (DIFFUSION + "test_4b_score_field_points_toward_the_data", SAMPLES)),
    "diffusion: Langevin in the order given, σ_L the last level": Edit(
        "hw5_diffusion",
        "levels = torch.as_tensor(noise_levels, dtype=x_mod.dtype).flatten().sort(descending=True).values",
        "levels = torch.as_tensor(noise_levels, dtype=x_mod.dtype).flatten()",
        (ANNEALING, DIFFUSION + "test_4a_langevin_step_sizes_follow_algorithm_1", SAMPLES)),
    "gan: generator loss as -log(sigmoid(logits)), the course's form": Edit(
        "hw5_gan",
        "return generator_loss(self.disc(self.gen(z)), self.loss)",
        "return -torch.log(torch.sigmoid(self.disc(self.gen(z)))).mean()",
        (GAN + "test_gan_get_loss_g_is_the_nonsaturating_loss",
         GAN + "test_gan_short_training_produces_digit_like_samples")),
    "gan: _weight_init over self.modules()": Edit(
        "hw5_gan",
        "for layer in self.children():\n            if isinstance(layer, (nn.Conv2d, nn.Linear)):",
        "for layer in self.modules():\n            if isinstance(layer, (nn.Conv2d, nn.Linear)):",
        (GAN + "test_gan_weight_init",)),
}


def apply(reference: str, edits: list[Edit]) -> str:
    """The reference text with each edit made (each edit's `old` must occur exactly once)."""
    for edit in edits:
        assert reference.count(edit.old) == 1, f"the edit's text is not (once) in {edit.script}.py: {edit.old!r}"
        reference = reference.replace(edit.old, edit.new)
    return reference
