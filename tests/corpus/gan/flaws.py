"""Typical mistakes in hw5_gan.py (Spring 2024, question 4), each one edit of a correct file of this folder.

`old` occurs exactly once in `base`; `loses` names the rubric rows that must lose points, cascades included
(test_4d_loss_d and test_4e_loss_g run the student's losses on stub networks, so a bug in DNet or GNet does not
reach them; test_4f_training runs the course's loop with the student's networks and losses, so whatever stops
the generator from learning reaches it). Every other row keeps its points.
"""

FLAWS = [
    {
        # the discriminator returns (B,) instead of (B, 1) (a real submission); this file's losses compare it
        # with torch.ones(batch_size, 1) targets, which nn.BCEWithLogitsLoss refuses, so training stops too
        "name": "discriminator_squeezes_output",
        "base": "plain.py",
        "old": "        x = self.fc(x)\n        return x\n",
        "new": "        x = self.fc(x)\n        return x.squeeze()\n",
        "loses": ["test_4a_dnet", "test_4f_training"],
    },
    {
        # conv3 is not followed by a ReLU
        "name": "discriminator_missing_relu_after_conv3",
        "base": "functional.py",
        "old": "        x = F.relu(self.conv3(x))                    # (B, 8, 5, 5)\n",
        "new": "        x = self.conv3(x)                            # (B, 8, 5, 5)\n",
        "loses": ["test_4a_dnet"],
    },
    {
        # nn.LeakyReLU() has slope 0.01, not the 0.2 the handout asks for
        "name": "generator_leaky_relu_default_slope",
        "base": "plain.py",
        "old": "        self.lrelu = nn.LeakyReLU(0.2)\n",
        "new": "        self.lrelu = nn.LeakyReLU()\n",
        "loses": ["test_4b_gnet"],
    },
    {
        # the discriminator keeps PyTorch's default initialisation (kaiming_uniform_ with a=sqrt(5), so a bound
        # of 1/sqrt(fan_in), and nonzero uniform biases)
        "name": "discriminator_pytorch_default_init",
        "base": "sequential.py",
        "old": "        for layer in self.layers:\n"
               "            if isinstance(layer, (nn.Conv2d, nn.Linear)):\n"
               "                nn.init.kaiming_uniform_(layer.weight)\n"
               "                layer.bias.data.fill_(0.0)\n",
        "new": "        pass  # PyTorch already initialises Conv2d and Linear with kaiming_uniform_\n",
        "loses": ["test_4c_weight_init"],
    },
    {
        # kaiming uniform weights, but the biases keep their nonzero default values
        "name": "discriminator_biases_not_zeroed",
        "base": "plain.py",
        "old": "            nn.init.kaiming_uniform_(layer.weight)\n            nn.init.zeros_(layer.bias)\n",
        "new": "            nn.init.kaiming_uniform_(layer.weight)\n",
        "loses": ["test_4c_weight_init"],
    },
    {
        # real images labelled 0 and generated ones 1 in the discriminator loss
        "name": "discriminator_loss_labels_swapped",
        "base": "plain.py",
        "old": "        real_labels = torch.ones(batch_size, 1, device=self._dev)\n"
               "        fake_labels = torch.zeros(batch_size, 1, device=self._dev)\n",
        "new": "        real_labels = torch.zeros(batch_size, 1, device=self._dev)\n"
               "        fake_labels = torch.ones(batch_size, 1, device=self._dev)\n",
        "loses": ["test_4d_loss_d", "test_4f_training"],
    },
    {
        # each BCE summed over the batch instead of averaged: the loss is batch_size times too large (Adam
        # hardly notices, so training still works)
        "name": "discriminator_loss_summed_over_batch",
        "base": "plain.py",
        "old": "        criterion = nn.BCEWithLogitsLoss()\n",
        "new": "        criterion = nn.BCEWithLogitsLoss(reduction='sum')\n",
        "loses": ["test_4d_loss_d"],
    },
    {
        # the original minimax generator loss: minimise log(1 - D(G(z))) (written as minus the BCE against
        # zeros) instead of the non-saturating -log D(G(z))
        "name": "generator_loss_saturating_log_one_minus_d",
        "base": "functional.py",
        "old": "        return F.binary_cross_entropy(d_fake, torch.ones_like(d_fake))\n",
        "new": "        return -F.binary_cross_entropy(d_fake, torch.zeros_like(d_fake))\n",
        "loses": ["test_4e_loss_g"],
    },
    {
        # the generated images are detached in the generator loss as well, so no gradient reaches the generator
        "name": "generator_loss_detached",
        "base": "sequential.py",
        "old": "        generated = self.gen(z)\n",
        "new": "        generated = self.gen(z).detach()\n",
        "loses": ["test_4e_loss_g", "test_4f_training"],
    },
]
