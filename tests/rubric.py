"""The points tables: the one place an instructor edits points, partial credit, visibility and time limits.

Each script is its own Gradescope assignment (students upload one file to each), so the rubric is one table per
assignment. Only what students write is graded: code the course's starter gives (the VAE's Encoder, the Fall-2022
DiffusionModel and generate_noise_levels, the Spring-2024 ScoreNet.forward) earns no row of its own. A row maps a
graded test (a function of the assignment's test file) to its handout item, the title students see, its points, its
Gradescope visibility (visible / after_due_date / after_published / hidden), its timeout in seconds on one CPU core,
the partial credit it can take off (`deductions`, points by name, which the test applies with `deduct(name,
reason)`), and the functions of the student's file it grades (`grades`, qualified names: the starter release turns
them into TODO stubs). A graded test passes (full points, minus its deductions) or fails (0).

    python tests/autograder.py table [--assignment NAME] [--markdown]   # the tables, with totals
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
    deductions: dict = {}
    grades: tuple = ()


class Starter(NamedTuple):
    """What `autograder.py starter` takes from the reference script to write the students' file."""
    keep: tuple            # the reference's top-level classes and functions the starter holds, in this order
    omit: tuple = ()       # methods of those classes left out: this project's extras (kept if given code uses one)
    todo: dict = {}        # functions students write that no row grades on its own: qualified name -> item
    main: str = "main"     # the reference's function that becomes the starter's main()
    files: tuple = ()      # data files handed out beside the script


class Assignment(NamedTuple):
    name: str            # what `autograder.py --assignment` takes
    title: str
    edition: str         # the course's term the starter files come from
    question: str        # the handout's question number
    script: str          # the one file students submit, without .py
    tests: str           # the graded test file under tests/
    needs_mnist: bool    # whether its zip carries the MNIST file and the trained judge
    rows: dict           # test function -> Row
    starter: Starter     # how the students' starter file is derived from the reference


# Whole-run limits: Gradescope stops an autograder after 10 minutes by default; keep a margin for setup.
TIME_BUDGET_SECONDS = 540.0
# The time a script may take to import (once per run, before its tests): a hang costs this, not every test's timeout.
IMPORT_TIMEOUT = 60.0
# Multiply every timeout (e.g. 2.0 on a slower machine), or set $HW5_TIMEOUT_SCALE.
TIMEOUT_SCALE = 1.0

VAE = Assignment("vae", "Homework 5 VAE code", "Fall 2022", "2", "hw5_vae", "test_grade_vae.py", True, {
    "test_2a_decoder": Row("2.a", "Decoder: 2-500-784, tanh then sigmoid", 2,
                           grades=("Decoder.__init__", "Decoder.forward")),
    "test_2b_i_logpdf_diagonal_gaussian": Row("2.b.i", "logpdf_diagonal_gaussian: values", 2,
                                              grades=("VAE.logpdf_diagonal_gaussian",)),
    "test_2b_i_logpdf_diagonal_gaussian_broadcasts": Row("2.b.i", "logpdf_diagonal_gaussian: prior of shape (latent,)",
                                                         1, grades=("VAE.logpdf_diagonal_gaussian",)),
    "test_2b_ii_logpdf_bernoulli": Row("2.b.ii", "logpdf_bernoulli: values over 784 pixels", 3,
                                       grades=("VAE.logpdf_bernoulli",)),
    "test_2b_iii_sample_diagonal_gaussian_statistics": Row("2.b.iii", "sample_diagonal_gaussian: statistics", 1,
                                                           grades=("VAE.sample_diagonal_gaussian",)),
    "test_2b_iii_sample_diagonal_gaussian_reparameterized": Row("2.b.iii", "sample_diagonal_gaussian: reparameterized",
                                                                2, grades=("VAE.sample_diagonal_gaussian",)),
    "test_2b_iv_sample_bernoulli": Row("2.b.iv", "sample_Bernoulli", 1, grades=("VAE.sample_Bernoulli",)),
    "test_2c_sample_z": Row("2.c.i", "sample_z", 1),
    "test_2c_elbo_loss": Row("2.c.ii", "elbo_loss: Eq. 2", 3, grades=("VAE.elbo_loss",)),
    "test_2c_elbo_sign_and_scale": Row("2.c.ii", "elbo_loss: sign and scale on MNIST", 1, grades=("VAE.elbo_loss",)),
    "test_2d_training": Row("2.d", "training improves the ELBO", 3, timeout=120),
    "test_2e_i_data_space": Row("2.e.i", "figure: prior samples", 3, timeout=120, deductions={
        "fewer draws": 1, "not side by side": 1.5, "not drawn from the means": 1.5, "not drawn from the prior": 1.5,
        "not digits": 3},
        grades=("VAE.visualize_data_space",)),
    "test_2e_ii_latent_space": Row("2.e.ii", "figure: latent space", 3, timeout=120, deductions={
        "not the means": 3, "not coloured by digit": 1.5}, grades=("VAE.visualize_latent_space",)),
    "test_2e_iii_interpolation": Row("2.e.iii", "figure: interpolation", 3, timeout=120, deductions={
        "fewer pairs": 1, "not eleven alphas": 1.5, "same digit": 1},
        grades=("VAE.visualize_inter_class_interpolation",)),
}, Starter(keep=("Encoder", "Decoder", "VAE", "parse_args", "main"),
           omit=("Decoder.logits", "VAE.logpdf_bernoulli_logits", "VAE.kl_to_prior", "VAE.forward",
                 "VAE.log_importance_weights", "VAE.visualize_manifold")))

DIFFUSION_FA22 = Assignment("diffusion-fa22", "Homework 5 diffusion code (ScoreMatching)", "Fall 2022", "4",
                            "hw5_diffusion", "test_grade_diffusion_fa22.py", False, {
    "test_4a_denoising_loss_value": Row("4.a", "denoising_loss: value", 3, grades=("ScoreMatching.denoising_loss",)),
    "test_4a_denoising_loss_noise_std": Row("4.a", "denoising_loss: noise of standard deviation σ", 1,
                                            grades=("ScoreMatching.denoising_loss",)),
    "test_4a_denoising_loss_sigma_per_sample": Row("4.a", "denoising_loss: one σ per sample, uniformly", 2,
                                                   grades=("ScoreMatching.denoising_loss",)),
    "test_4a_langevin_step_sizes": Row("4.a", "langevin_dynamics_sample: step sizes α_i = ε σ_i² / σ_L²", 2,
                                       grades=("ScoreMatching.langevin_dynamics_sample",)),
    "test_4a_langevin_anneals": Row("4.a", "langevin_dynamics_sample: annealed from the largest σ (mixture weights)",
                                    3, grades=("ScoreMatching.langevin_dynamics_sample",)),
    "test_4b_score_field": Row("4.b", "score field points toward the data", 12, timeout=240, deductions={
        "field": 6, "plot": 3}, grades=("ScoreMatching.denoising_loss",)),
    "test_4c_samples": Row("4.c", "samples match the data", 12, timeout=240, deductions={
        "distance": 6, "modes": 2}, grades=("ScoreMatching.langevin_dynamics_sample",)),
}, Starter(keep=("generate_noise_levels", "DiffusionModel", "ScoreMatching", "main_fa22"),
           omit=("ScoreMatching.prior_spread",), todo={"ScoreMatching.train": "4.a"}, main="main_fa22",
           files=("cs446.npy",)))

DIFFUSION_SP24 = Assignment("diffusion-sp24", "Homework 5 diffusion code (ScoreNet)", "Spring 2024", "5",
                            "hw5_diffusion", "test_grade_diffusion_sp24.py", False, {
    "test_5a_scorenet_layers": Row("5.a", "ScoreNet: n_layers Linear layers with Softplus between", 2,
                                   grades=("ScoreNet.__init__",)),
    "test_5a_denoising_loss_value": Row("5.a", "compute_denoising_loss: value", 3, grades=("compute_denoising_loss",)),
    "test_5a_denoising_loss_noise_and_sigma": Row("5.a", "compute_denoising_loss: noise σz, one σ per sample", 2,
                                                  grades=("compute_denoising_loss",)),
    "test_5a_score_field": Row("5.a", "score field points toward the data", 8, timeout=240, deductions={"field": 4},
                               grades=("ScoreNet.__init__", "compute_denoising_loss")),
    "test_5b_langevin_update_rule": Row("5.b", "langevin_dynamics_sample: x + α s + √(2α) z, α = ε σ_i² / σ_L²", 2,
                                        grades=("langevin_dynamics_sample",)),
    "test_5b_langevin_anneals": Row("5.b", "langevin_dynamics_sample: annealed from the largest σ (mixture weights)",
                                    3, grades=("langevin_dynamics_sample",)),
    "test_5b_samples": Row("5.b", "samples match the data", 8, timeout=240, deductions={"distance": 4, "modes": 2},
                           grades=("langevin_dynamics_sample",)),
    "test_5c_trajectory": Row("5.c", "return_traj: every intermediate state", 3, grades=("langevin_dynamics_sample",)),
}, Starter(keep=("ScoreNet", "compute_denoising_loss", "langevin_dynamics_sample", "main_sp24"), main="main_sp24"))

GAN = Assignment("gan", "Homework 5 GAN code", "Spring 2024", "4", "hw5_gan", "test_grade_gan.py", True, {
    "test_4a_dnet": Row("4.a", "DNet: layers and forward", 2, grades=("DNet.__init__", "DNet.forward")),
    "test_4b_gnet": Row("4.b", "GNet: layers and forward", 2, grades=("GNet.__init__", "GNet.forward")),
    "test_4c_weight_init": Row("4.c", "_weight_init: kaiming-uniform weights, zero biases", 1,
                               grades=("DNet._weight_init", "GNet._weight_init")),
    "test_4d_loss_d": Row("4.d", "_get_loss_d: BCE, real -> 1, fake -> 0", 2, grades=("GAN._get_loss_d",)),
    "test_4e_loss_g": Row("4.e", "_get_loss_g: non-saturating -log D(G(z))", 2, grades=("GAN._get_loss_g",)),
    "test_4f_training": Row("4.f", "a short training produces digit-like samples", 3, timeout=180),
}, Starter(keep=("DNet", "GNet", "GAN", "main"), omit=("GAN.sample_z", "GAN.generate")))


def todo(assignment: Assignment) -> dict[str, str]:
    """The functions students write, qualified name -> handout item: those the rows grade and the starter's own."""
    graded: dict[str, str] = {}
    for row in assignment.rows.values():
        for name in row.grades:
            graded.setdefault(name, row.number)  # a function several rows grade is the item of the first
    return {**graded, **assignment.starter.todo}


ASSIGNMENTS: dict[str, Assignment] = {a.name: a for a in (VAE, DIFFUSION_FA22, DIFFUSION_SP24, GAN)}


def by_test_file(file: str) -> Assignment | None:
    """The assignment whose graded tests live in tests/<file>, if any."""
    return next((a for a in ASSIGNMENTS.values() if a.tests == file), None)


def time_budget() -> float:
    return float(os.environ.get("HW5_TIME_BUDGET", TIME_BUDGET_SECONDS))


def timeout_scale() -> float:
    return float(os.environ.get("HW5_TIMEOUT_SCALE", TIMEOUT_SCALE))
