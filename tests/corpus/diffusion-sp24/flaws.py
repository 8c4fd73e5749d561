"""Typical mistakes in Spring 2024 hw5_diffusion.py (question 5), each one edit of a correct file of this folder.

`loses` names the rubric rows that must lose points; every other row keeps its points.
"""

FLAWS = [
    {
        "name": "scorenet_ignores_n_layers",
        "base": "mse_mean.py",
        "old": "for _ in range(n_layers - 2):",
        "new": "for _ in range(6):",
        # always 8 Linear layers: right for the default ScoreNet(), so training and sampling are unaffected
        "loses": ["test_5a_scorenet_layers"],
    },
    {
        "name": "scorenet_has_n_layers_plus_one_linear_layers",
        "base": "handout_loop.py",
        "old": "dims = [3] + [latent_dim] * (n_layers - 1) + [2]",
        "new": "dims = [3] + [latent_dim] * n_layers + [2]",
        # ScoreNet() gets 9 Linear layers, which trains as well as 8
        "loses": ["test_5a_scorenet_layers"],
    },
    {
        "name": "scorenet_repeats_one_linear_object",
        "base": "numpy_sigmas.py",
        "old": "        for _ in range(n_layers - 2):\n            layers += [nn.Linear(latent_dim, latent_dim), nn.Softplus()]\n",
        "new": "        layers += [nn.Linear(latent_dim, latent_dim), nn.Softplus()] * (n_layers - 2)\n",
        # list repetition: the 6 hidden layers are one shared nn.Linear (3 distinct Linear modules in ScoreNet())
        "loses": ["test_5a_scorenet_layers"],
    },
    {
        "name": "langevin_does_T_minus_1_updates_per_level",
        "base": "handout_loop.py",
        "old": "for t in range(iterations):",
        "new": "for t in range(iterations - 1):",
        # s = 0 variance grows by 2 (T - 1) sum alpha; the trajectory has L * (T - 1) entries. The annealing and the
        # trained samples are as good with one step fewer per level.
        "loses": ["test_5b_langevin_update_rule", "test_5c_trajectory"],
    },
    {
        "name": "trajectory_aliases_one_tensor_updated_in_place",
        "base": "handout_loop.py",
        "old": "x = x + alpha * scorenet(x, sigma) + torch.sqrt(2 * alpha) * z",
        "new": "x += alpha * scorenet(x, sigma) + torch.sqrt(2 * alpha) * z",
        # every list entry is the same tensor: the stacked trajectory repeats the final state L*T times; the
        # returned samples themselves are right
        "loses": ["test_5c_trajectory"],
    },
    {
        "name": "sigma_drawn_proportional_to_its_value",
        "base": "mse_mean.py",
        "old": "used_sigmas = sigmas[torch.multinomial(probs, B, replacement=True)]",
        "new": "used_sigmas = sigmas[torch.multinomial(sigmas, B, replacement=True)]",
        # the smallest levels are almost never drawn (sigma = 0.01 in about 0.2% of the samples with levels from 3
        # down to 0.01). Trained with all levels at once the field there would be barely trained and the samples
        # pile up too tightly on the modes; the grader trains one level at a time, so the mistake costs its own row.
        "loses": ["test_5a_denoising_loss_noise_and_sigma"],
    },
    {
        "name": "fall_2022_update_rule",
        "base": "numpy_sigmas.py",
        "old": "x_t = x_t + alpha * scorenet(x_t, float(sigma)) + math.sqrt(2 * alpha) * z",
        "new": "x_t = x_t + alpha / 2 * scorenet(x_t, float(sigma)) + math.sqrt(alpha) * z",
        # x + alpha/2 s + sqrt(alpha) z: the s = 0 variance grows by T sum alpha instead of 2 T sum alpha; it is
        # the right dynamics at half the step, so annealing and trained samples stay good
        "loses": ["test_5b_langevin_update_rule"],
    },
    {
        "name": "loss_without_lambda",
        "base": "handout_loop.py",
        "old": "loss = 0.5 * lam * torch.sum(",
        "new": "loss = 0.5 * torch.sum(",
        # 1/2 ||s + (x~ - x) / sigma^2||^2 averaged: without lambda(sigma) = sigma^2 the smallest level's terms
        # (about 1/sigma^2) would swamp the rest in training. The grader trains one level at a time and weighs each
        # by sigma^2 over the constant the student's loss puts on it, so the missing weight costs the value row
        # alone; the noise and the sigmas drawn are judged from what the network receives, and stay right.
        "loses": ["test_5a_denoising_loss_value"],
    },
    {
        "name": "noise_not_scaled_by_sigma",
        "base": "numpy_sigmas.py",
        "old": "x_tilde = training_data + sigma * torch.randn(B, C)",
        "new": "x_tilde = training_data + torch.randn(B, C)",
        "loses": ["test_5a_denoising_loss_noise_and_sigma", "test_5a_score_field", "test_5b_samples"],
    },
]
