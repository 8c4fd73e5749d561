"""Style: the handout taken literally: loss summed over the batch and both coordinates, no weighting; NCSN step sizes.

Denoising loss: the template's torch.randint line for sigma_chosen, x~ = x + sigma z, the sum over all samples of
||s(x~, sigma) + (x~ - x) / sigma^2||^2 (no 1/2, no lambda(sigma)); sigma goes to the network as an (N,) tensor, and
to the arithmetic as a column reshaped by the course's size, sigma_chosen.view(2000, 1) (the docstring's "(2000, 2)
dimension tensor": cs446.npy has 2000 points).
Langevin: the levels in the order given, alpha_i = lr * sigma_i^2 / sigma_L^2 with sigma_L = noise_levels[-1] (the
smallest level in main's descending order, as in NCSN), update x + alpha_i / 2 * s + sqrt(alpha_i) * z, sigma passed
as a 0-d tensor. Noise levels from np.geomspace. The "given" code here is an invented stand-in for the template
(shared with weighted_mean.py): DiffusionModel an MLP on cat[x, sigma] 3 -> 128 -> 128 -> 128 -> 2 with Softplus,
output divided by sigma, accepting sigma as a float, (N,) or (N, 1); plot_score a plain (not transposed) quiver over
[0, 1]^2 at sigma = 0.03 then plt.show(); train a full Adam loop. course_template.py carries the course's real code.

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
        levels = np.geomspace(sigma_smallest, sigma_largest, num_levels)
        return torch.tensor(levels).float()

    '''
    Denoise x_mod using Langevin Dynamics, with:
        - noise_levels being a (L,) dimension tensor containing sigmas
        - iterations specifying the number of iterations to perform
        - lr specifying the learning rate for langevin dynamics 
    '''
    @torch.no_grad()
    def langevin_dynamics_sample(self, x_mod, noise_levels, iterations, lr):

        # TODO: YOUR CODE HERE
        sigma_L = noise_levels[-1]
        for sigma in noise_levels:
            alpha = lr * sigma ** 2 / sigma_L ** 2
            for t in range(iterations):
                z = torch.randn_like(x_mod)
                x_mod = x_mod + alpha / 2 * self.scorenet(x_mod, sigma) + alpha ** 0.5 * z

        return x_mod

    '''
    Calculate denoising score matching loss based on samples. 
        - samples is (2000, 2) dimension tensor containing the dataset
        - noise_levels is a (L) dimension tensor containing your chosen noise levels
    '''
    def denoising_loss(self, samples, noise_levels):

        sigma_chosen = noise_levels[torch.randint(len(noise_levels), (samples.shape[0],))]

        # TODO: YOUR CODE HERE
        sigmas = sigma_chosen.view(2000, 1)
        x_tilde = samples + sigmas * torch.randn_like(samples)
        score = self.scorenet(x_tilde, sigma_chosen)
        loss = torch.sum((score + (x_tilde - samples) / sigmas ** 2) ** 2)
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
    training_lr = 0.001
    training_iterations = 10000

    sampling_iterations = 100
    sampling_lr = 0.00005

    #Visualize Dataset
    coords = torch.from_numpy(np.load('cs446.npy')).float()
    plt.scatter(coords[:, 0], coords[:, 1])
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

    plt.scatter(samples[:, 0], samples[:, 1])
    plt.xlim(0, 1)
    plt.ylim(0, 1)
    plt.title("generated samples")
    plt.show()


if __name__ == '__main__':
    main()
