"""Style: NCSN-weighted loss averaged over batch and coordinates; Langevin steps scaled by the LARGEST level; main() unguarded.

Denoising loss: sigma drawn per sample with torch.multinomial over uniform weights (replacing the template's randint
line), x~ = x + sigma z, lambda(sigma) = sigma^2 weighting, torch.mean over the batch AND the 2 coordinates; sigma
goes to the network as an (N, 1) column. Langevin: the levels sorted largest first whatever order they come in,
alpha_i = lr * sigma_i^2 / sigma_L^2 with sigma_L the LARGEST level (the handout's literal numbering
sigma_1 < ... < sigma_L), so the sampling lr in main is larger; sigma passed as an (N, 1) column. Noise levels built
with a Python list of powers. main() is called at the bottom of the file without the __main__ guard. Given code: the
invented stand-in template of handout_sum.py (MLP on cat[x, sigma], plain quiver, full train loop).

Expected: full marks
"""
import torch
import torch.nn as nn
import numpy as np
import matplotlib.pyplot as plt


class DiffusionModel(nn.Module):
    def __init__(self):
        super(DiffusionModel, self).__init__()

        # A small MLP on the point and its noise level: (x, y, sigma) -> 2
        self.net = nn.Sequential(
            nn.Linear(3, 128),
            nn.Softplus(),
            nn.Linear(128, 128),
            nn.Softplus(),
            nn.Linear(128, 128),
            nn.Softplus(),
            nn.Linear(128, 2)
        )

    def forward(self, x, sigma):
        # sigma is either a float (one noise level for every point) or a tensor with one noise level per point
        if not torch.is_tensor(sigma):
            sigma = torch.tensor(sigma)
        sigma = sigma.to(x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, sigma], dim=1)) / sigma  # Scale network by sigma following NCSNv2


class ScoreMatching():

    def __init__(self):
        self.scorenet = DiffusionModel()

    '''
    Utility function to visualize the score function learned by this model. 
    '''
    def plot_score(self):
        x = np.linspace(0, 1, 25)
        y = np.linspace(0, 1, 25)
        xv, yv = np.meshgrid(x, y)
        arrow_starts = np.stack([xv.flatten(), yv.flatten()], axis=1).astype(np.float32)

        arrow_ends = (self.scorenet(torch.from_numpy(arrow_starts), 0.03)).detach().numpy()

        plt.quiver(arrow_starts[:, 0], arrow_starts[:, 1], arrow_ends[:, 0], arrow_ends[:, 1])
        plt.title("score function")
        plt.show()

    '''
    Generate initial random noise to denoise.
    
    A gaussian distribution that roughly fits the ([0,1], [0,1]) range in which the points lie. 
    '''
    def initial_random_samples(self):
        return torch.randn((2000, 2)) / 3 + 0.5

    '''
    Generate geometrically distributed sigmas (sigma_0, sigma_1, ..., sigma_n) starting from smallest going to largest.  
    '''
    def generate_noise_levels(sigma_smallest, sigma_largest, num_levels):
        # TODO: YOUR CODE HERE
        # constant ratio between consecutive levels
        ratio = (sigma_largest / sigma_smallest) ** (1.0 / (num_levels - 1))
        sigmas = [sigma_smallest * ratio ** i for i in range(num_levels)]
        return torch.tensor(sigmas, dtype=torch.float32)

    '''
    Denoise x_mod using Langevin Dynamics, with:
        - noise_levels being a (L,) dimension tensor containing sigmas
        - iterations specifying the number of iterations to perform
        - lr specifying the learning rate for langevin dynamics 
    '''
    @torch.no_grad()
    def langevin_dynamics_sample(self, x_mod, noise_levels, iterations, lr):

        # TODO: YOUR CODE HERE
        # Algorithm 1: anneal from the largest noise level down to the smallest one
        levels = torch.sort(torch.as_tensor(noise_levels), descending=True).values
        # in the handout sigma_1 < sigma_2 < ... < sigma_L, so sigma_L is the largest level
        sigma_L = levels[0]
        n = x_mod.shape[0]
        for sigma_i in levels:
            alpha_i = lr * (sigma_i / sigma_L) ** 2
            sigma_column = torch.full((n, 1), sigma_i.item())
            for t in range(iterations):
                z_t = torch.randn(n, 2)
                x_mod = x_mod + 0.5 * alpha_i * self.scorenet(x_mod, sigma_column) + torch.sqrt(alpha_i) * z_t

        return x_mod

    '''
    Calculate denoising score matching loss based on samples. 
        - samples is (2000, 2) dimension tensor containing the dataset
        - noise_levels is a (L) dimension tensor containing your chosen noise levels
    '''
    def denoising_loss(self, samples, noise_levels):

        # one noise level per sample, every level equally likely
        weights = torch.ones(len(noise_levels))
        sigma_chosen = noise_levels[torch.multinomial(weights, samples.shape[0], replacement=True)]

        # TODO: YOUR CODE HERE
        sigma_chosen = sigma_chosen.reshape(-1, 1)  # (N, 1)
        noise = torch.randn_like(samples) * sigma_chosen
        perturbed = samples + noise
        target = -noise / sigma_chosen ** 2  # score of N(x, sigma^2 I) at the perturbed point
        scores = self.scorenet(perturbed, sigma_chosen)
        # lambda(sigma) = sigma^2 so that all noise levels have about the same scale (NCSN)
        loss = torch.mean(sigma_chosen ** 2 * (scores - target) ** 2)
        return loss

    '''
    Fit self.scorenet to the provided data argument at provided noise_levels. 
    '''
    def train(self, data, noise_levels, learning_rate, iterations):
        optimizer = torch.optim.Adam(self.scorenet.parameters(), lr=learning_rate)
        for t in range(iterations):
            optimizer.zero_grad()
            loss = self.denoising_loss(data, noise_levels)
            loss.backward()
            optimizer.step()
            if t % 1000 == 0:
                print("iteration", t, "loss", loss.item())


def main():

    #TODO: SET HYPERPARAMETERS HERE
    retrain = True # Uncomment to disable training from scratch
    noise_levels = ScoreMatching.generate_noise_levels(0.1, 0.01, 10)
    training_lr = 0.002
    training_iterations = 8000

    sampling_iterations = 100
    sampling_lr = 0.005

    #Visualize Dataset
    coords = torch.from_numpy(np.load('cs446.npy')).float()
    plt.scatter(coords[:, 0], coords[:, 1], s=2)
    plt.title("true samples")
    plt.show()

    #Train or load the model
    sm = None
    if(retrain):
        sm = ScoreMatching()
        sm.train(coords, noise_levels, training_lr, training_iterations)
        torch.save(sm, "model.pth")
    else: 
        sm = torch.load("model.pth")
    
    #Visualize score function
    sm.plot_score()

    #Generate and plot samples 
    samples = sm.langevin_dynamics_sample(sm.initial_random_samples(), noise_levels, sampling_iterations, sampling_lr).numpy()

    plt.scatter(samples[:, 0], samples[:, 1], s=2)
    plt.xlim(0, 1)
    plt.ylim(0, 1)
    plt.title("generated samples")
    plt.show()


main()
