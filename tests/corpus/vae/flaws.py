"""Typical mistakes in hw5_vae.py (Fall 2022, question 2), each one edit of a correct file of this folder.

`old` occurs exactly once in `base`; `loses` names the rubric rows that must lose points, cascades included
(the rows test_2c_* grade elbo_loss with the grader's own densities patched in, so only a bug in elbo_loss
itself reaches them; test_2d_training trains with the student's densities and sampler, so a bug there that
breaks training reaches it; the 2.e rows train with the grader's ELBO, so only the decoder, sample_Bernoulli
and the plotting code reach them). Every other row keeps its points.
"""

FLAWS = [
    {
        # the template's comment says "fc2: a fully connected layer with 500 hidden units", so the student adds
        # a 500 -> 500 layer (followed by a sigmoid) and a third layer to 784 (a real submission)
        "name": "decoder_extra_500_to_500_layer",
        "base": "functional.py",
        "old": "            nn.Linear(latent_dimension, hidden_units),\n"
               "            nn.Tanh(),\n"
               "            nn.Linear(hidden_units, data_dimension),\n",
        "new": "            nn.Linear(latent_dimension, hidden_units),\n"
               "            nn.Tanh(),\n"
               "            nn.Linear(hidden_units, hidden_units),\n"
               "            nn.Sigmoid(),\n"
               "            nn.Linear(hidden_units, data_dimension),\n",
        "loses": ["test_2a_decoder"],
    },
    {
        # log of the product of 784 pixel probabilities: the product underflows to 0 in float32 (a real
        # submission), so the log-likelihood is -inf and training turns every weight into nan
        "name": "bernoulli_log_of_product_underflows",
        "base": "plain.py",
        "old": "        logprob = torch.sum(x * torch.log(p) + (1 - x) * torch.log(1 - p), dim=1)\n",
        "new": "        logprob = torch.log(torch.prod(p ** x * (1 - p) ** (1 - x), dim=1))\n",
        "loses": ["test_2b_ii_logpdf_bernoulli", "test_2d_training"],
    },
    {
        # binary cross-entropy is already -log p(x): negating it again flips the sign of the log-likelihood,
        # and training then pushes the decoder away from the data
        "name": "bernoulli_log_likelihood_sign_error",
        "base": "functional.py",
        "old": "        return -F.binary_cross_entropy(p, x, reduction='none').sum(dim=-1)\n",
        "new": "        return F.binary_cross_entropy(p, x, reduction='none').sum(dim=-1)\n",
        "loses": ["test_2b_ii_logpdf_bernoulli", "test_2d_training"],
    },
    {
        # the -1/2 log(2 pi) of each dimension is left out: the values are off by a constant, which cancels
        # between log p(z) and log q(z|x), so training is unchanged
        "name": "gaussian_logpdf_missing_log_2pi",
        "base": "sum_and_loops.py",
        "old": "            logprob = logprob - 0.5 * torch.log(2 * np.pi * var) - diff ** 2 / (2 * var)\n",
        "new": "            logprob = logprob - 0.5 * torch.log(var) - diff ** 2 / (2 * var)\n",
        "loses": ["test_2b_i_logpdf_diagonal_gaussian", "test_2b_i_logpdf_diagonal_gaussian_broadcasts"],
    },
    {
        # torch.normal draws from the right distribution but passes no gradient to mu or sigma_square (its
        # derivative is defined as zero): no reparameterization trick
        "name": "sample_without_reparameterization",
        "base": "sum_and_loops.py",
        "old": "        sample = mu + std * eps\n",
        "new": "        sample = torch.normal(mu, std)\n",
        "loses": ["test_2b_iii_sample_diagonal_gaussian_reparameterized", "test_2d_training"],
    },
    {
        # the "sample" is the probability map itself: grey, not binary
        "name": "sample_bernoulli_returns_p",
        "base": "functional.py",
        "old": "        return Bernoulli(probs=p).sample()\n",
        "new": "        return p\n",
        "loses": ["test_2b_iv_sample_bernoulli", "test_2e_i_data_space"],
    },
    {
        # log q(z|x) added instead of subtracted
        "name": "elbo_adds_log_q",
        "base": "plain.py",
        "old": "        elbo = torch.mean(log_p + log_p_z - log_q)\n",
        "new": "        elbo = torch.mean(log_p + log_p_z + log_q)\n",
        "loses": ["test_2c_elbo_loss", "test_2d_training"],
    },
    {
        # decodes a random z drawn from N(z_alpha, I) instead of z_alpha itself
        "name": "interpolation_decodes_random_z_near_z_alpha",
        "base": "plain.py",
        "old": "                z_alpha = self.interpolate_mu(mua, mub, alpha)\n",
        "new": "                z_alpha = self.sample_diagonal_gaussian(self.interpolate_mu(mua, mub, alpha), "
               "torch.ones(self.latent_dimension))\n",
        "loses": ["test_2e_iii_interpolation"],
    },
    {
        # only 5 draws from the prior in figure 2.e.i (the course asks for 10)
        "name": "fewer_than_10_prior_draws",
        "base": "sum_and_loops.py",
        "old": "        for i in range(10):\n            # TODO: Sample 10 z from prior \n",
        "new": "        for i in range(5):\n            # TODO: Sample 10 z from prior \n",
        "loses": ["test_2e_i_data_space"],
    },
    {
        # the latent means are scattered in a single colour: the class labels are never used
        "name": "latent_scatter_not_coloured_by_label",
        "base": "plain.py",
        "old": "        plt.scatter(means[:, 0], means[:, 1], c=labels, cmap='tab10', s=3)\n",
        "new": "        plt.scatter(means[:, 0], means[:, 1], s=3)\n",
        "loses": ["test_2e_ii_latent_space"],
    },
    {
        # the ten z are drawn with variance 0 (zeros passed as sigma_square): all ten are the prior's mean z = 0, so
        # the figure shows ten copies of one decoded image (and ten Bernoulli samples of it), not the prior's spread
        "name": "prior_draws_with_variance_zero",
        "base": "plain.py",
        "old": "        z = self.sample_diagonal_gaussian(torch.zeros(10, self.latent_dimension), "
               "torch.ones(10, self.latent_dimension))\n",
        "new": "        z = self.sample_diagonal_gaussian(torch.zeros(10, self.latent_dimension), "
               "torch.zeros(10, self.latent_dimension))\n",
        "loses": ["test_2e_i_data_space"],
    },
]
