"""Deliberately broken copies of the reference scripts, for the autograder's self-check.

Each mutant is the reference file with one edit, the kind of mistake students make. test_autograder.py
writes each one into a fake submission and checks that it loses points on the tests named in `caught_by`
(while the unedited reference earns every point). The `old` text must occur in the reference exactly once,
so a mutant cannot silently drift out of date when the reference changes.
"""
from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    script: str           # hw5_vae / hw5_diffusion / hw5_gan
    old: str              # text of the reference, replaced by `new`
    new: str
    caught_by: tuple      # rubric keys (tests/rubric.py) that must lose points


VAE = "test_vae.py::"

MUTANTS: dict[str, Mutant] = {
    "vae: Gaussian log-density without the 1/2": Mutant(
        "hw5_vae",
        "return -0.5 * (torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)",
        "return -(0.5 * torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)",
        (VAE + "test_2b_i_logpdf_diagonal_gaussian_matches_torch_distributions",)),
    "vae: Bernoulli log-likelihood with the wrong sign": Mutant(
        "hw5_vae",
        "return (x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        "return -(x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)",
        (VAE + "test_2b_ii_logpdf_bernoulli_matches_torch_distributions",)),
    "vae: no reparameterization": Mutant(
        "hw5_vae",
        "return mu + torch.sqrt(sigma_square) * eps",
        "return (mu + torch.sqrt(sigma_square) * eps).detach()",
        (VAE + "test_2b_iii_sample_diagonal_gaussian_is_reparameterized",)),
    "vae: sample_Bernoulli returns the probabilities": Mutant(
        "hw5_vae",
        "return torch.bernoulli(p).to(torch.float32)",
        "return p.to(torch.float32)",
        (VAE + "test_2b_iv_sample_bernoulli_values_dtype_and_mean",)),
    "vae: ELBO adds log q instead of subtracting it": Mutant(
        "hw5_vae",
        "return (log_p_x + log_p_z - log_q).mean()",
        "return (log_p_x + log_p_z + log_q).mean()",
        (VAE + "test_2c_elbo_loss_matches_torch_distributions",)),
    "vae: decoder with ReLU instead of tanh": Mutant(
        "hw5_vae",
        "return torch.sigmoid(self.fc2_dec(torch.tanh(self.fc1_dec(z))))",
        "return torch.sigmoid(self.fc2_dec(torch.relu(self.fc1_dec(z))))",
        (VAE + "test_2a_decoder_architecture_and_forward",)),
    "vae: interpolation at alpha = 0.5 only": Mutant(
        "hw5_vae",
        "ALPHAS = [k / 10 for k in range(11)]",
        "ALPHAS = [0.5]",
        (VAE + "test_2e_iii_interpolation_three_pairs_eleven_alphas",)),
}
