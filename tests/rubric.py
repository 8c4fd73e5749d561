"""The points table: the one place an instructor edits points, visibility and time limits.

Each row maps a test (file::function under tests/) to its handout item, the title students see, the points it
is worth, its Gradescope visibility (visible / after_due_date / after_published / hidden) and its timeout in
seconds on one CPU core. A graded test either passes (full points, minus any `deduct(...)` it made) or fails
(0 points). `python tests/autograder.py table` prints the table with totals.
"""
from __future__ import annotations

import os
from typing import NamedTuple


class Row(NamedTuple):
    number: str
    title: str
    points: float
    visibility: str = "visible"
    timeout: float = 60.0


# Whole-run limits: Gradescope stops an autograder after 10 minutes by default; keep a margin for setup.
TIME_BUDGET_SECONDS = 540.0
# The time a script may take to import (once per run, before its tests): a hang costs this, not every test's timeout.
IMPORT_TIMEOUT = 60.0
# Multiply every timeout (e.g. 2.0 on a slower machine), or set $HW5_TIMEOUT_SCALE.
TIMEOUT_SCALE = 1.0

VAE, DIFFUSION, GAN = "test_vae.py::", "test_diffusion.py::", "test_gan.py::"
RUBRIC: dict[str, Row] = {
    # ---- Question 2: the VAE ------------------------------------------------------------------------
    VAE + "test_2a_encoder_outputs_mean_and_positive_variance": Row("2.a.i", "Encoder: mean and variance heads", 1),
    VAE + "test_2a_decoder_architecture_and_forward": Row("2.a.ii", "Decoder: 2-500-784, tanh then sigmoid", 2),
    VAE + "test_2b_i_logpdf_diagonal_gaussian_matches_torch_distributions":
        Row("2.b.i", "logpdf_diagonal_gaussian: values", 2),
    VAE + "test_2b_i_logpdf_diagonal_gaussian_broadcasts_a_prior_of_shape_latent":
        Row("2.b.i", "logpdf_diagonal_gaussian: prior of shape (latent,)", 1),
    VAE + "test_2b_ii_logpdf_bernoulli_matches_torch_distributions": Row("2.b.ii", "logpdf_bernoulli: values", 2),
    VAE + "test_2b_ii_logpdf_bernoulli_is_finite_at_saturated_probabilities":
        Row("2.b.ii", "logpdf_bernoulli: finite at p = 0 or 1", 1),
    VAE + "test_2b_iii_sample_diagonal_gaussian_statistics": Row("2.b.iii", "sample_diagonal_gaussian: statistics", 1),
    VAE + "test_2b_iii_sample_diagonal_gaussian_is_reparameterized":
        Row("2.b.iii", "sample_diagonal_gaussian: reparameterized", 2),
    VAE + "test_2b_iv_sample_bernoulli_values_dtype_and_mean": Row("2.b.iv", "sample_Bernoulli", 1),
    VAE + "test_2c_sample_z_draws_from_q": Row("2.c.i", "sample_z", 1),
    VAE + "test_2c_elbo_loss_matches_torch_distributions": Row("2.c.ii", "elbo_loss: Eq. 2", 3),
    VAE + "test_2c_elbo_sign_and_scale_on_real_mnist": Row("2.c.ii", "elbo_loss: sign and scale on MNIST", 1),
    VAE + "test_2d_short_training_improves_the_test_elbo": Row("2.d", "training improves the ELBO", 3, timeout=120),
    VAE + "test_2e_i_data_space_shows_means_and_bernoulli_samples": Row("2.e.i", "figure: prior samples", 3,
                                                                        timeout=120),
    VAE + "test_2e_ii_latent_space_plots_one_mean_per_training_image": Row("2.e.ii", "figure: latent space", 3,
                                                                           timeout=120),
    VAE + "test_2e_iii_interpolation_three_pairs_eleven_alphas": Row("2.e.iii", "figure: interpolation", 3,
                                                                     timeout=120),
    # ---- Question 4: score-based diffusion ------------------------------------------------------------
    DIFFUSION + "test_4a_denoising_loss_matches_a_hand_computation": Row("4.a", "denoising_loss: value", 3),
    DIFFUSION + "test_4a_denoising_loss_noise_has_standard_deviation_sigma":
        Row("4.a", "denoising_loss: noise of standard deviation σ", 1),
    DIFFUSION + "test_4a_denoising_loss_draws_sigma_per_sample": Row("4.a", "denoising_loss: one σ per sample", 2),
    DIFFUSION + "test_4a_generate_noise_levels_is_geometric": Row("4.a", "generate_noise_levels: geometric", 1),
    DIFFUSION + "test_4a_langevin_step_sizes_follow_algorithm_1":
        Row("4.a", "langevin_dynamics_sample: step sizes α_i = ε σ_i² / σ_L²", 2),
    DIFFUSION + "test_4a_langevin_anneals_to_the_mixture_weights":
        Row("4.a", "langevin_dynamics_sample: annealed from the largest σ (mixture weights)", 3),
    DIFFUSION + "test_4b_score_field_points_toward_the_data": Row("4.b", "score field points toward the data", 12,
                                                                  timeout=240),
    DIFFUSION + "test_4c_langevin_samples_match_the_data": Row("4.c", "samples match the data", 12, timeout=240),
    # ---- The GAN (the handout's question number is not known here: rename "GAN.a" ... to match it) -------------
    GAN + "test_gan_dnet_architecture": Row("GAN.a", "DNet: layers, order and forward", 2),
    GAN + "test_gan_gnet_architecture": Row("GAN.b", "GNet: layers, order and forward", 2),
    GAN + "test_gan_weight_init": Row("GAN.c", "_weight_init: kaiming-uniform weights, zero biases", 1),
    GAN + "test_gan_get_loss_d_matches_hand_computed_bce": Row("GAN.d", "_get_loss_d: BCE, real -> 1, fake -> 0", 2),
    GAN + "test_gan_get_loss_g_is_the_nonsaturating_loss": Row("GAN.e", "_get_loss_g: non-saturating -log D(G(z))", 2),
    GAN + "test_gan_short_training_produces_digit_like_samples":
        Row("GAN.f", "a short training produces digit-like samples", 3, timeout=180),
}


def time_budget() -> float:
    return float(os.environ.get("HW5_TIME_BUDGET", TIME_BUDGET_SECONDS))


def timeout_scale() -> float:
    return float(os.environ.get("HW5_TIMEOUT_SCALE", TIMEOUT_SCALE))
