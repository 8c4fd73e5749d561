"""Typical mistakes in Fall 2022 hw5_diffusion.py (question 4), each one edit of a correct file of this folder.

`loses` names the rubric rows that must lose points; every other row keeps its points.
"""

FLAWS = [
    {
        "name": "anneals_from_the_smallest_level_up",
        "base": "weighted_mean.py",
        "old": "levels = torch.sort(torch.as_tensor(noise_levels), descending=True).values",
        "new": "levels = torch.sort(torch.as_tensor(noise_levels), descending=False).values",
        # sorted ascending whatever the order passed in: the chains end at the LARGEST sigma. The step sizes'
        # sum (the s = 0 variance) does not depend on the order, so the step-size row keeps its points.
        "loses": ["test_4a_langevin_anneals", "test_4c_samples"],
    },
    {
        "name": "one_step_size_for_all_levels",
        "base": "handout_sum.py",
        "old": "alpha = lr * sigma ** 2 / sigma_L ** 2",
        "new": "alpha = lr",
        "loses": ["test_4a_langevin_step_sizes", "test_4a_langevin_anneals", "test_4c_samples"],
    },
    {
        "name": "langevin_without_the_noise_term",
        "base": "course_template.py",
        "old": "x = x + (alpha_i / 2) * self.scorenet(x, sigma_i) + math.sqrt(alpha_i) * z_t",
        "new": "x = x + (alpha_i / 2) * self.scorenet(x, sigma_i)",
        # gradient ascent: with s = 0 nothing moves; with a score the samples collapse onto the modes
        "loses": ["test_4a_langevin_step_sizes", "test_4a_langevin_anneals", "test_4c_samples"],
    },
    {
        "name": "langevin_restarts_from_x_mod_at_every_level",
        "base": "course_template.py",
        "old": "        x = x_mod.clone()\n        for i in range(len(noise_levels)):\n",
        "new": "        for i in range(len(noise_levels)):\n            x = x_mod.clone()\n",
        # only the last level's T steps, from the initial samples, reach the output
        "loses": ["test_4a_langevin_step_sizes", "test_4a_langevin_anneals", "test_4c_samples"],
    },
    {
        "name": "noise_not_scaled_by_sigma",
        "base": "handout_sum.py",
        "old": "x_tilde = samples + sigmas * torch.randn_like(samples)",
        "new": "x_tilde = samples + torch.randn_like(samples)",
        # the stand-in scores of the value and sigma rows cancel the noise, so those rows keep their points
        "loses": ["test_4a_denoising_loss_noise_std", "test_4b_score_field", "test_4c_samples"],
    },
    {
        "name": "target_sign_flipped",
        "base": "weighted_mean.py",
        "old": "target = -noise / sigma_chosen ** 2",
        "new": "target = noise / sigma_chosen ** 2",
        # s - (x~ - x) / sigma^2: the network learns minus the score. With s = 0 the loss is unchanged (noise row
        # keeps), and the sigmas the network receives are still one per sample, uniformly drawn.
        "loses": ["test_4a_denoising_loss_value", "test_4b_score_field", "test_4c_samples"],
    },
    {
        "name": "one_sigma_for_the_whole_batch",
        "base": "weighted_mean.py",
        "old": "sigma_chosen = noise_levels[torch.multinomial(weights, samples.shape[0], replacement=True)]",
        "new": "sigma_chosen = noise_levels[torch.multinomial(weights, 1)]",
        # with a single level passed (value and noise rows) nothing changes; training over many iterations still
        # visits every level, so the trained field and samples stay good
        "loses": ["test_4a_denoising_loss_sigma_per_sample"],
    },
]
