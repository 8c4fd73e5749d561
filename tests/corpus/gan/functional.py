"""Functional style: F.relu / F.max_pool2d / F.leaky_relu / F.interpolate in forward, layers registered in another order.

_weight_init is `self.apply(init_weights)` with a module-level init function (kaiming_uniform_ with
nonlinearity='relu', constant 0 biases); the discriminator loss is the MEAN of the two BCEs (one
binary_cross_entropy_with_logits over the concatenated real and fake logits, fakes detached); the generator
loss is F.binary_cross_entropy on sigmoid outputs against ones.

Expected: full marks
"""
import struct
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

import torch
import torch.optim as optim
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.utils import save_image

from hw5_utils import BASE_URL, download, GANDataset




def init_weights(m):
    # kaiming uniform for every conv / linear layer, biases 0
    if isinstance(m, nn.Conv2d) or isinstance(m, nn.Linear):
        nn.init.kaiming_uniform_(m.weight, nonlinearity='relu')
        if m.bias is not None:
            nn.init.constant_(m.bias, 0.0)


class DNet(nn.Module):
    """This is discriminator network."""

    def __init__(self):
        super(DNet, self).__init__()
        
        # TODO: implement layers here
        self.linear = nn.Linear(8 * 5 * 5, 1)
        self.conv3 = nn.Conv2d(4, 8, 3, padding=0)
        self.conv2 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)

        self._weight_init()

    def _weight_init(self):
        # TODO: implement weight initialization here
        self.apply(init_weights)

    def forward(self, x):
        # TODO: complete forward function
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)   # (B, 2, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # (B, 4, 7, 7)
        x = F.relu(self.conv3(x))                    # (B, 8, 5, 5)
        x = torch.flatten(x, 1)                      # (B, 200)
        return self.linear(x)                        # (B, 1)


class GNet(nn.Module):
    """This is generator network."""

    def __init__(self, zdim):
        """
        Parameters
        ----------
            zdim: dimension for latent variable.
        """
        super(GNet, self).__init__()

        # TODO: implement layers here
        self.conv_out = nn.Conv2d(8, 1, 3, padding=1)
        self.conv_b = nn.Conv2d(16, 8, 3, padding=1)
        self.conv_a = nn.Conv2d(32, 16, 3, padding=1)
        self.linear = nn.Linear(zdim, 32 * 7 * 7)

        self._weight_init()

    def _weight_init(self):
        # TODO: implement weight initialization here
        self.apply(init_weights)

    def forward(self, z):
        """
        Parameters
        ----------
            z: latent variables used to generate images.
        """
        # TODO: complete forward function
        h = F.leaky_relu(self.linear(z), negative_slope=0.2)
        h = h.reshape(z.shape[0], 32, 7, 7)
        h = F.interpolate(h, scale_factor=2)            # (B, 32, 14, 14)
        h = F.leaky_relu(self.conv_a(h), 0.2)
        h = F.interpolate(h, scale_factor=2)            # (B, 16, 28, 28)
        h = F.leaky_relu(self.conv_b(h), 0.2)
        return torch.sigmoid(self.conv_out(h))          # (B, 1, 28, 28)


class GAN:
    def __init__(self, zdim=64):
        """
        Parameters
        ----------
            zdim: dimension for latent variable.
        """
        torch.manual_seed(2)
        self._dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

        self._zdim = zdim
        self.disc = DNet().to(self._dev)
        self.gen = GNet(self._zdim).to(self._dev)

    def _get_loss_d(self, batch_size, batch_data, z):
        """This function computes loss for discriminator.

        Parameters
        ----------
            batch_size: #data per batch.
            batch_data: data from dataset.
            z: random latent variable.
        """
        # TODO: implement discriminator's loss function
        fake = self.gen(z).detach()  # no need to backprop into the generator here
        logits = torch.cat([self.disc(batch_data), self.disc(fake)], dim=0)
        labels = torch.cat([torch.ones(batch_size, 1), torch.zeros(batch_size, 1)], dim=0).to(self._dev)
        return F.binary_cross_entropy_with_logits(logits, labels)

    def _get_loss_g(self, batch_size, z):
        """This function computes loss for generator.

        Parameters
        ----------
            batch_size: #data per batch.
            z: random latent variable.
        """
        # TODO: implement generator's loss function
        d_fake = torch.sigmoid(self.disc(self.gen(z)))
        return F.binary_cross_entropy(d_fake, torch.ones_like(d_fake))

    def train(self, iter_d=1, iter_g=1, n_epochs=100, batch_size=256, lr=0.0002):

        # first download
        f_name = "train-images-idx3-ubyte.gz"
        download(BASE_URL + f_name, f_name)

        print("Processing dataset ...")
        train_data = GANDataset(
            f"./data/{f_name}",
            self._dev,
            transform=transforms.Compose([transforms.Normalize((0.0,), (255.0,))]),
        )
        print(f"... done. Total {len(train_data)} data entries.")

        train_loader = DataLoader(
            train_data,
            batch_size=batch_size,
            shuffle=True,
            num_workers=0,
            drop_last=True,
        )

        dopt = optim.Adam(self.disc.parameters(), lr=lr, weight_decay=0.0)
        dopt.zero_grad()
        gopt = optim.Adam(self.gen.parameters(), lr=lr, weight_decay=0.0)
        gopt.zero_grad()

        for epoch in tqdm(range(n_epochs)):
            for batch_idx, data in tqdm(
                enumerate(train_loader), total=len(train_loader)
            ):

                z = 2 * torch.rand(data.size()[0], self._zdim, device=self._dev) - 1

                if batch_idx == 0 and epoch == 0:
                    plt.imshow(data[0, 0, :, :].detach().cpu().numpy())
                    plt.savefig("goal.pdf")

                if batch_idx == 0 and epoch % 10 == 0:
                    with torch.no_grad():
                        tmpimg = self.gen(z)[0:64, :, :, :].detach().cpu()
                    save_image(
                        tmpimg, "test_{0}.png".format(epoch), nrow=8, normalize=True
                    )

                dopt.zero_grad()
                for k in range(iter_d):
                    loss_d = self._get_loss_d(batch_size, data, z)
                    loss_d.backward()
                    dopt.step()
                    dopt.zero_grad()

                gopt.zero_grad()
                for k in range(iter_g):
                    loss_g = self._get_loss_g(batch_size, z)
                    loss_g.backward()
                    gopt.step()
                    gopt.zero_grad()

            print(f"E: {epoch}; DLoss: {loss_d.item()}; GLoss: {loss_g.item()}")


if __name__ == "__main__":
    gan = GAN()
    gan.train()
