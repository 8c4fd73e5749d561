"""Edited copies of the reference scripts, for the autograder's self-check (tests/test_autograder.py).

They complement tests/corpus/ (students' own files, graded on every row): an edit names only the rows it must lose or
keep, mostly the quick ones, so that many fit in one grading.

A mutant is the reference with one deliberate mistake, the kind students make: graded as its assignment, it must
lose points on each of its `rows`. An equivalent is the reference with a different but correct answer (another
numerically safe log-likelihood, a plain course-style score network, the other reading of σ_L, ...): it must keep
every point of its `rows`. Each edit's `old` text must occur in the reference exactly once, so that an edit cannot
silently drift out of date when the reference changes. The two diffusion assignments grade the same file, whose
editions share their mathematics: one edit can be a mutant of both.
"""
from __future__ import annotations

from typing import NamedTuple

import rubric


class Edit(NamedTuple):
    assignment: str       # a name of rubric.ASSIGNMENTS; the edit is made to that assignment's script
    old: str              # text of the reference, replaced by `new`
    new: str
    rows: tuple           # test functions of the assignment's rubric that must lose points (a mutant) or keep them
    keeps: float | None = None  # a mutant's exact points left on its rows, where the rubric gives partial credit

    @property
    def script(self) -> str:
        return rubric.ASSIGNMENTS[self.assignment].script


ANNEALED_SMALLEST_FIRST = ("levels = torch.as_tensor(np.asarray(sigmas) if not torch.is_tensor(sigmas) else sigmas,\n"
                           "                             dtype=x.dtype).flatten().sort(descending=True).values",
                           "levels = torch.as_tensor(np.asarray(sigmas) if not torch.is_tensor(sigmas) else sigmas,\n"
                           "                             dtype=x.dtype).flatten().sort().values")
RESIDUAL = "residuals = (scorenet(perturbed, sigma_chosen) + (perturbed - samples) / sigma ** 2).square().sum(1)"
ONE_SIGMA = "sigma_chosen = levels[torch.randint(len(levels), (len(samples),), device=samples.device)]  # (N,)"
ONE_SIGMA_PER_BATCH = "sigma_chosen = levels[torch.randint(len(levels), (1,), device=samples.device)].expand(len(samples))"
STEP_OVER_SMALLEST = "sigma_min = levels[-1].item()\n"

MUTANTS: dict[str, Edit] = {
    "vae: Gaussian log-density without the 1/2": Edit(
        "vae",
        "return -0.5 * (torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)",
        "return -(0.5 * torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)",
        ("test_2b_i_logpdf_diagonal_gaussian", "test_2b_i_logpdf_diagonal_gaussian_broadcasts")),
    "vae: Bernoulli log-likelihood with the wrong sign": Edit(
        "vae",
        "return (x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        "return -(x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        ("test_2b_ii_logpdf_bernoulli",)),
    "vae: no reparameterization": Edit(
        "vae", "return mu + torch.sqrt(sigma_square) * eps", "return (mu + torch.sqrt(sigma_square) * eps).detach()",
        ("test_2b_iii_sample_diagonal_gaussian_reparameterized",)),
    "vae: sample_Bernoulli returns the probabilities": Edit(
        "vae", "return torch.bernoulli(p).to(torch.float32)", "return p.to(torch.float32)",
        ("test_2b_iv_sample_bernoulli",)),
    "vae: ELBO adds log q instead of subtracting it": Edit(
        "vae", "return (log_p_x + log_p_z - log_q).mean()", "return (log_p_x + log_p_z + log_q).mean()",
        ("test_2c_elbo_loss",)),
    "vae: decoder with ReLU instead of tanh": Edit(
        "vae", "return self.fc2_dec(torch.tanh(self.fc1_dec(z)))", "return self.fc2_dec(torch.relu(self.fc1_dec(z)))",
        ("test_2a_decoder",)),
    "vae: interpolation stops at alpha = 0.9": Edit(
        "vae", "ALPHAS = [k / 10 for k in range(11)]", "ALPHAS = [k / 10 for k in range(10)]",
        ("test_2e_iii_interpolation",), keeps=1.5),
    "fa22: σ annealed the wrong way (smallest first)": Edit(
        "diffusion-fa22", *ANNEALED_SMALLEST_FIRST, ("test_4a_langevin_anneals",)),
    "fa22: denoising loss without the 1/σ²": Edit(
        "diffusion-fa22", RESIDUAL, RESIDUAL.replace("(perturbed - samples) / sigma ** 2", "(perturbed - samples)"),
        ("test_4a_denoising_loss_value",)),
    "fa22: denoising loss with the wrong sign": Edit(
        "diffusion-fa22", RESIDUAL, RESIDUAL.replace("+ (perturbed - samples)", "- (perturbed - samples)"),
        ("test_4a_denoising_loss_value", "test_4b_score_field")),
    "fa22: one σ per batch instead of per sample": Edit(
        "diffusion-fa22", ONE_SIGMA, ONE_SIGMA_PER_BATCH, ("test_4a_denoising_loss_sigma_per_sample",)),
    "fa22: T - 1 Langevin steps per level": Edit(
        "diffusion-fa22", "        for _ in range(iterations):\n            x = x + step",
        "        for _ in range(iterations - 1):\n            x = x + step", ("test_4a_langevin_step_sizes",)),
    "sp24: σ annealed the wrong way (smallest first)": Edit(
        "diffusion-sp24", *ANNEALED_SMALLEST_FIRST, ("test_5b_langevin_anneals",)),
    "sp24: loss without λ(σ) = σ²": Edit(
        "diffusion-sp24", "return (0.5 * sigma_chosen ** 2 * residuals).mean()", "return (0.5 * residuals).mean()",
        ("test_5a_denoising_loss_value",)),
    "sp24: one σ per batch instead of per sample": Edit(
        "diffusion-sp24", ONE_SIGMA, ONE_SIGMA_PER_BATCH, ("test_5a_denoising_loss_noise_and_sigma",)),
    "sp24: step over the first (largest) σ²": Edit(
        "diffusion-sp24", STEP_OVER_SMALLEST, "sigma_min = levels[0].item()\n", ("test_5b_langevin_update_rule",)),
    "sp24: T - 1 Langevin steps per level": Edit(
        "diffusion-sp24", "        for _ in range(iterations):\n            x = x + step",
        "        for _ in range(iterations - 1):\n            x = x + step",
        ("test_5b_langevin_update_rule", "test_5c_trajectory")),
    "sp24: ScoreNet with n_layers + 1 Linear layers": Edit(
        "diffusion-sp24", "widths = [3] + [latent_dim] * (n_layers - 1) + [2]",
        "widths = [3] + [latent_dim] * n_layers + [2]\n        n_layers += 1", ("test_5a_scorenet_layers",)),
    "gan: saturating generator loss log(1 - D(G(z)))": Edit(
        "gan", "return generator_loss(self.disc(self.gen(z) if fake is None else fake))\n",
        "return generator_loss(self.disc(self.gen(z) if fake is None else fake), 'minimax')\n", ("test_4e_loss_g",)),
    "gan: discriminator labels swapped": Edit(
        "gan",
        "return (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))\n"
        "            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))",
        "return (F.binary_cross_entropy_with_logits(logits_real, torch.zeros_like(logits_real))\n"
        "            + F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake)))",
        ("test_4d_loss_d",)),
    "gan: no ReLU after DNet's last convolution": Edit(
        "gan", "        self.relu3 = nn.ReLU()", "        self.relu3 = nn.Identity()", ("test_4a_dnet",)),
    "gan: PyTorch's default initialization": Edit(
        "gan", "nn.init.kaiming_uniform_(layer.weight)", "nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))",
        ("test_4c_weight_init",)),
    "gan: GNet's LeakyReLU with the default slope": Edit(
        "gan", "self.lrelu2 = nn.LeakyReLU(0.2)", "self.lrelu2 = nn.LeakyReLU()", ("test_4b_gnet",)),
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
        "vae",
        "return (x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        "return -nn.functional.binary_cross_entropy_with_logits(torch.logit(p, eps=1e-6), x, reduction='none')"
        ".sum(-1)",
        ("test_2b_ii_logpdf_bernoulli",)),
    "vae: a Decoder with an extra Dropout(0) layer": Edit(
        "vae",
        "        self.fc2_dec = nn.Linear(hidden_units, data_dimension)\n\n"
        "    def forward(self, z: torch.Tensor) -> torch.Tensor:\n"
        "        return torch.sigmoid(self.logits(z))",
        "        self.fc2_dec = nn.Linear(hidden_units, data_dimension)\n        self.dropout = nn.Dropout(0.0)\n\n"
        "    def forward(self, z: torch.Tensor) -> torch.Tensor:\n"
        "        return torch.sigmoid(self.fc2_dec(self.dropout(torch.tanh(self.fc1_dec(z)))))",
        ("test_2a_decoder",)),
    "vae: the ELBO summed over the batch": Edit(
        "vae", "return (log_p_x + log_p_z - log_q).mean()", "return (log_p_x + log_p_z - log_q).sum()",
        ("test_2c_elbo_loss", "test_2c_elbo_sign_and_scale")),
    "fa22: a plain course-style DiffusionModel (Softplus MLP on (x, log σ), output / σ)": Edit(
        "diffusion-fa22", "class ScoreMatching:", PLAIN_SCORE_NETWORK, ("test_4b_score_field", "test_4c_samples")),
    "fa22: α_i over the largest σ² (the handout's numbering)": Edit(
        "diffusion-fa22", STEP_OVER_SMALLEST, "sigma_min = levels[0].item()\n",
        ("test_4a_langevin_step_sizes", "test_4a_langevin_anneals")),
    "fa22: the loss averaged over the batch": Edit(
        "diffusion-fa22", "return (residuals * sigma_chosen ** 2 if sigma_weighted else residuals).sum()",
        "return (residuals * sigma_chosen ** 2 if sigma_weighted else residuals).mean()",
        ("test_4a_denoising_loss_value", "test_4a_denoising_loss_noise_std", "test_4a_denoising_loss_sigma_per_sample")),
    "sp24: the loss summed over the batch, without the 1/2": Edit(
        "diffusion-sp24", "return (0.5 * sigma_chosen ** 2 * residuals).mean()",
        "return (sigma_chosen ** 2 * residuals).sum()",
        ("test_5a_denoising_loss_value", "test_5a_denoising_loss_noise_and_sigma")),
    "gan: generator loss as -log(sigmoid(logits)), the course's form": Edit(
        "gan", "return generator_loss(self.disc(self.gen(z) if fake is None else fake), self.loss)",
        "return -torch.log(torch.sigmoid(self.disc(self.gen(z) if fake is None else fake))).mean()",
        ("test_4e_loss_g",)),
    "gan: _weight_init over self.modules()": Edit(
        "gan", "for layer in self.children():\n            if isinstance(layer, (nn.Conv2d, nn.Linear)):",
        "for layer in self.modules():\n            if isinstance(layer, (nn.Conv2d, nn.Linear)):", ("test_4c_weight_init",)),
    "gan: DNet's pooling before its ReLU (the same function)": Edit(
        "gan", "        self.relu2 = nn.ReLU()\n        self.pool2 = nn.MaxPool2d(2)",
        "        self.pool2 = nn.MaxPool2d(2)\n        self.relu2 = nn.ReLU()", ("test_4a_dnet",)),
    "gan: the discriminator loss as the mean of its two terms": Edit(
        "gan",
        "            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))",
        "            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))) / 2",
        ("test_4d_loss_d",)),
}


def apply(reference: str, edits: list[Edit]) -> str:
    """The reference text with each edit made (each edit's `old` must occur exactly once)."""
    for edit in edits:
        assert reference.count(edit.old) == 1, f"the edit's text is not (once) in {edit.script}.py: {edit.old!r}"
        reference = reference.replace(edit.old, edit.new)
    return reference
