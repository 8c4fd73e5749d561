"""Self-contained style: the course's download / mnist / load_mnist pasted into the file (dead yann.lecun.com host).

The student worked in a notebook: the course's data helpers are copied in (urllib's urlretrieve from
http://yann.lecun.com/exdb/mnist/ into ./data/, the IDX files parsed with struct, one-hot labels), shadowing
hw5_utils' own; VAE.__init__ reloads e_params.pkl / d_params.pkl whatever resume_training says (weights trained
once, never submitted) and main() no longer trains. Densities by hand with math.log(2 pi) and torch.log1p, ELBO as
a batch mean, the template's (latent,) prior; labels from torch.max(labels, 1)[1]. Figure 2.e.i:
a list of 28 x 28 images, p(x|z) then its sample for each z, in concat_images(images, 2, 10). The latent scatter
drawn with plt.plot(x, y, marker=".", linestyle="") one digit at a time. The interpolation: 3 random pairs of
different digits, 11 alphas each (33 images of 28 x 28), shown with concat_images(images, 3, 10), which reads the
first 30 of them, as the course's concat_images does.

Expected: full marks
"""
import sys
import argparse
import matplotlib.pyplot as plt
plt.rcParams["axes.grid"] = False
import matplotlib.image
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import numpy as np
from hw5_utils import *

import os
import gzip
import math
import struct
from urllib.request import urlretrieve


# ---- helper functions from hw5_utils, pasted here so the notebook runs by itself ----
BASE_URL = 'http://yann.lecun.com/exdb/mnist/'


def download(url, filename):
    if not os.path.exists('./data'):
        os.makedirs('./data')
    out_file = os.path.join('./data', filename)
    if not os.path.isfile(out_file):
        urlretrieve(url, out_file)


def mnist():
    def read_labels(path):
        with gzip.open(path, 'rb') as f:
            magic, n = struct.unpack('>II', f.read(8))
            return np.frombuffer(f.read(), dtype=np.uint8)

    def read_images(path):
        with gzip.open(path, 'rb') as f:
            magic, n, rows, cols = struct.unpack('>IIII', f.read(16))
            return np.frombuffer(f.read(), dtype=np.uint8).reshape(n, rows, cols)

    files = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
             't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
    for name in files:
        download(BASE_URL + name, name)
    train_images = read_images('./data/' + files[0])
    train_labels = read_labels('./data/' + files[1])
    test_images = read_images('./data/' + files[2])
    test_labels = read_labels('./data/' + files[3])
    return train_images, train_labels, test_images, test_labels


def load_mnist():
    train_images, train_labels, test_images, test_labels = mnist()
    N_data = train_images.shape[0]
    train_images = train_images.reshape(N_data, 784) / 255.0
    test_images = test_images.reshape(test_images.shape[0], 784) / 255.0
    train_labels = np.eye(10, dtype=int)[train_labels]
    test_labels = np.eye(10, dtype=int)[test_labels]
    train_images = torch.from_numpy(np.round(train_images[:10000])).float()
    train_labels = torch.from_numpy(train_labels[:10000]).float()
    test_images = torch.from_numpy(np.round(test_images[:10000])).float()
    test_labels = torch.from_numpy(test_labels[:10000])
    return N_data, train_images, train_labels, test_images, test_labels
# ---- end of the helper functions ----



# The "encoder" model q(z|x)
class Encoder(nn.Module):
    def __init__(self, latent_dimension, hidden_units, data_dimension):
        super(Encoder, self).__init__()
        # Input:
        #   latent_dimension: the latent dimension of the encoder
        #   hidden_units: the number of hidden units
        
        self.fc1 = nn.Linear(data_dimension, hidden_units)
        self.fc2_mu = nn.Linear(hidden_units, latent_dimension)
        self.fc2_sigma = nn.Linear(hidden_units, latent_dimension)

    def forward(self, x):
        # Input: x input image [batch_size x data_dimension]
        # Output: parameters of a diagonal gaussian 
        #   mean : [batch_size x latent_dimension]
        #   variance : [batch_size x latent_dimension]

        hidden = torch.tanh(self.fc1(x))
        mu = self.fc2_mu(hidden)
        log_sigma_square = self.fc2_sigma(hidden)
        sigma_square = torch.exp(log_sigma_square)  
        return mu, sigma_square


# "decoder" Model p(x|z)
class Decoder(nn.Module):
    def __init__(self, latent_dimension, hidden_units, data_dimension):
        super(Decoder, self).__init__()
        # Input:
        #   latent_dimension: the latent dimension of the encoder
        #   hidden_units: the number of hidden units

        # TODO: deine the parameters of the decoder
        # fc1: a fully connected layer with 500 hidden units. 
        # fc2: a fully connected layer with 500 hidden units. 
        self.fc1 = nn.Linear(latent_dimension, hidden_units)
        self.fc2 = nn.Linear(hidden_units, data_dimension)

    def forward(self, z):
        # input
        #   z: latent codes sampled from the encoder [batch_size x latent_dimension]
        # output 
        #   p: a tensor of the same size as the image indicating the probability of every pixel being 1 [batch_size x data_dimension]

        # TODO: implement the decoder here. The decoder is a multi-layer perceptron with two hidden layers. 
        # The first layer is followed by a tanh non-linearity and the second layer by a sigmoid.
        h = torch.tanh(self.fc1(z))
        p = torch.sigmoid(self.fc2(h))
        return p


# VAE model
class VAE(nn.Module):
    def __init__(self, args):
        super(VAE, self).__init__()
        self.latent_dimension = args.latent_dimension
        self.hidden_units =  args.hidden_units
        self.data_dimension = args.data_dimension
        self.resume_training = args.resume_training
        self.batch_size = args.batch_size
        self.num_epoches = args.num_epoches
        self.e_path = args.e_path
        self.d_path = args.d_path

        # load and pre-process the data
        N_data, self.train_images, self.train_labels, test_images, test_labels = load_mnist()

        # Instantiate the encoder and decoder models 
        self.encoder = Encoder(self.latent_dimension, self.hidden_units, self.data_dimension)
        self.decoder = Decoder(self.latent_dimension, self.hidden_units, self.data_dimension)

        # Load the trained model parameters
        # (trained once already: always load the saved weights so the plots don't need another 200 epochs)
        self.encoder.load_state_dict(torch.load(self.e_path))
        self.decoder.load_state_dict(torch.load(self.d_path))

    # Sample from Diagonal Gaussian z~N(μ,σ^2 I) 
    @staticmethod
    def sample_diagonal_gaussian(mu, sigma_square):
        # Inputs:
        #   mu: mean of the gaussian [batch_size x latent_dimension]
        #   sigma_square: variance of the gaussian [batch_size x latent_dimension]
        # Output:
        #   sample: from a diagonal gaussian with mean mu and variance sigma_square [batch_size x latent_dimension]

        # TODO: Implement the reparameterization trick and return the sample z [batch_size x latent_dimension]
        sample = mu + torch.randn(mu.shape) * torch.sqrt(sigma_square)
        return sample

    # Sampler from Bernoulli
    @staticmethod
    def sample_Bernoulli(p):
        # Input: 
        #   p: the probability of pixels labeled 1 [batch_size x data_dimension]
        # Output:
        #   x: pixels'labels [batch_size x data_dimension], type should be torch.float32

        # TODO: Implement a sampler from a Bernoulli distribution
        x = (torch.rand_like(p) < p).type(torch.float32)
        return x


    # Compute Log-pdf of z under Diagonal Gaussian N(z|μ,σ^2 I)
    @staticmethod
    def logpdf_diagonal_gaussian(z, mu, sigma_square):
        # Input:
        #   z: sample [batch_size x latent_dimension]
        #   mu: mean of the gaussian distribution [batch_size x latent_dimension]
        #   sigma_square: variance of the gaussian distribution [batch_size x latent_dimension]
        # Output:
        #    logprob: log-probability of a diagomnal gaussian [batch_size]
        
        # TODO: implement the logpdf of a gaussian with mean mu and variance sigma_square*I
        logprob = torch.sum(-0.5 * math.log(2 * math.pi) - 0.5 * torch.log(sigma_square)
                            - (z - mu) ** 2 / (2 * sigma_square), dim=-1)
        return logprob

    # Compute log-pdf of x under Bernoulli 
    @staticmethod
    def logpdf_bernoulli(x, p):
        # Input:
        #   x: samples [batch_size x data_dimension]
        #   p: the probability of the x being labeled 1 (p is the output of the decoder) [batch_size x data_dimension]
        # Output:
        #   logprob: log-probability of a bernoulli distribution [batch_size]

        # TODO: implement the log likelihood of a bernoulli distribution p(x)
        logprob = (x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(dim=1)
        return logprob
    
    # Sample z ~ q(z|x)
    def sample_z(self, mu, sigma_square):
        # input:
        #   mu: mean of the gaussian [batch_size x latent_dimension]
        #   sigma_square: variance of the gaussian [batch_size x latent_dimension]
        # Output:
        #   zs: samples from q(z|x) [batch_size x latent_dimension] 
        zs = self.sample_diagonal_gaussian(mu, sigma_square)
        return zs 


    # Variational Objective
    def elbo_loss(self, sampled_z, mu, sigma_square, x, p):
        # Inputs
        #   sampled_z: samples z from the encoder [batch_size x latent_dimension]
        #   mu:
        #   sigma_square: parameters of q(z|x) [batch_size x latent_dimension]
        #   x: data samples [batch_size x data_dimension]
        #   p: the probability of a pixel being labeled 1 [batch_size x data_dimension]
        # Output
        #   elbo: the ELBO loss (scalar)

        # log_q(z|x) logprobability of z under approximate posterior N(μ,σ)
        log_q = self.logpdf_diagonal_gaussian(sampled_z, mu, sigma_square)
        
        # log_p_z(z) log probability of z under prior
        z_mu = torch.FloatTensor([0]*self.latent_dimension)
        z_sigma = torch.FloatTensor([1]*self.latent_dimension)
        log_p_z = self.logpdf_diagonal_gaussian(sampled_z, z_mu, z_sigma)

        # log_p(x|z) - conditional probability of data given latents.
        log_p = self.logpdf_bernoulli(x, p)
        
        # TODO: implement the ELBO loss using log_q, log_p_z and log_p
        elbo = (log_p + log_p_z - log_q).mean()
        return elbo


    def train(self):
        
        # Set-up ADAM optimizer
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        adam_optimizer = optim.Adam(params)

        # Train for ~200 epochs 
        num_batches = int(np.ceil(len(self.train_images) / self.batch_size))
        num_iters = self.num_epoches * num_batches
        
        for i in range(num_iters):
            x_minibatch = self.train_images[batch_indices(i, num_batches, self.batch_size),:]
            adam_optimizer.zero_grad()

            mu, sigma_square = self.encoder(x_minibatch)
            zs = self.sample_z(mu, sigma_square)
            p = self.decoder(zs)
            elbo = self.elbo_loss(zs, mu, sigma_square, x_minibatch, p)
            total_loss = -elbo
            total_loss.backward()
            adam_optimizer.step()

            if i%100 == 0:
                print("Epoch: " + str(i//num_batches) + ", Iter: " + str(i) + ", ELBO:" + str(elbo.item()))

        # Save Optimized Model Parameters
        torch.save(self.encoder.state_dict(), self.e_path)
        torch.save(self.decoder.state_dict(), self.d_path)


    # Generate digits using the VAE
    def visualize_data_space(self):
        with torch.no_grad():
            # TODO: Sample 10 z from prior 
            z = torch.randn(10, self.latent_dimension)

            # TODO: For each z, plot p(x|z)
            p = self.decoder(z)

            # TODO: Sample x from p(x|z) 
            x = self.sample_Bernoulli(p)

        # TODO: Concatenate plots into a figure (use the function concat_images)
        images = []
        for k in range(10):
            images.append(p[k].numpy().reshape(28, 28))  # top row: p(x|z)
            images.append(x[k].numpy().reshape(28, 28))  # bottom row: x ~ p(x|z)
        figure = concat_images(images, 2, 10)

        # TODO: Save the generated figure and include it in your report
        plt.figure(figsize=(12, 3))
        plt.imshow(figure, cmap='gray')
        plt.axis('off')
        plt.title('top: p(x|z), bottom: x ~ p(x|z)')
        plt.savefig('q2e1.png')
        plt.show()

        
    # Produce a scatter plot in the latent space, where each point in the plot will be the mean vector 
    # for the distribution $q(z|x)$ given by the encoder. Further, we will colour each point in the plot 
    # by the class label for the input data. Each point in the plot is colored by the class label for 
    # the input data.
    # The latent space should have learned to distinguish between elements from different classes, even though 
    # we never provided class labels to the model!
    def visualize_latent_space(self):
        
        # TODO: Encode the training data self.train_images
        with torch.no_grad():
            mu, sigma_square = self.encoder(self.train_images)

        # TODO: Take the mean vector of each encoding
        z_mean = mu.numpy()

        # TODO: Plot these mean vectors in the latent space with a scatter
        # Colour each point depending on the class label 
        _, labels = torch.max(self.train_labels, 1)
        labels = labels.numpy()
        plt.figure(figsize=(8, 8))
        for digit in range(10):
            plt.plot(z_mean[labels == digit, 0], z_mean[labels == digit, 1], marker='.', linestyle='',
                     markersize=2, label=str(digit))
        plt.legend(markerscale=6)
        plt.title('latent means of the training images')

        # TODO: Save the generated figure and include it in your report
        plt.savefig('q2e2.png')
        plt.show()


    # Function which gives linear interpolation z_α between za and zb
    @staticmethod
    def interpolate_mu(mua, mub, alpha = 0.5):
        return alpha*mua + (1-alpha)*mub


    # A common technique to assess latent representations is to interpolate between two points.
    # Here we will encode 3 pairs of data points with different classes.
    # Then we will linearly interpolate between the mean vectors of their encodings. 
    # We will plot the generative distributions along the linear interpolation.
    def visualize_inter_class_interpolation(self):
        
        # TODO: Sample 3 pairs of data with different classes
        _, labels = torch.max(self.train_labels, 1)
        pairs = []
        while len(pairs) < 3:
            i, j = np.random.randint(0, 10000, size=2)
            if labels[i] != labels[j]:
                pairs.append((i, j))

        with torch.no_grad():
            # TODO: Encode the data in each pair, and take the mean vectors
            mus = []
            for i, j in pairs:
                mua, _ = self.encoder(self.train_images[i:i + 1])
                mub, _ = self.encoder(self.train_images[j:j + 1])
                mus.append((mua, mub))

            # TODO: Linearly interpolate between these mean vectors (Use the function interpolate_mu)
            # TODO: Along the interpolation, plot the distributions p(x|z_α)
            images = []
            for alpha in [k / 10 for k in range(11)]:
                for mua, mub in mus:
                    p = self.decoder(self.interpolate_mu(mua, mub, alpha))
                    images.append(p.numpy().reshape(28, 28))

        # Concatenate these plots into one figure
        figure = concat_images(images, 3, 10)
        plt.figure(figsize=(10, 3))
        plt.imshow(figure, cmap='gray')
        plt.axis('off')
        plt.savefig('q2e3.png')
        plt.show()
      

def parse_args():
    parser = argparse.ArgumentParser(description=globals()['__doc__'])

    parser.add_argument('--e_path', type=str, default="./e_params.pkl", help='Path to the encoder parameters.')
    parser.add_argument('--d_path', type=str, default="./d_params.pkl", help='Path to the decoder parameters.')
    parser.add_argument('--hidden_units', type=int, default=500, help='Number of hidden units of the encoder and decoder models.')
    parser.add_argument('--latent_dimension', type=int, default='2', help='Dimensionality of the latent space.')
    parser.add_argument('--data_dimension', type=int, default='784', help='Dimensionality of the data space.')
    parser.add_argument('--resume_training', action='store_true', help='Whether to resume training')
    parser.add_argument('--seed', type=int, default=1234, help='Random seed')
    parser.add_argument('--num_epoches', type=int, default=200, help='Number of epochs for training.')
    parser.add_argument('--batch_size', type=int, default=100, help='Batch size.')

    args = parser.parse_args()
    return args


def main():
    # read the function arguments
    args = parse_args()

    # set the random seed 
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(args.seed)
    
    # train the model 
    vae = VAE(args)
    # vae.train()  # already trained: VAE.__init__ loads e_params.pkl and d_params.pkl

    # visualize the latent space
    vae.visualize_data_space()
    vae.visualize_latent_space()
    vae.visualize_inter_class_interpolation()


if __name__ == "__main__":
    main()
