"""The graded tests of the `gan` assignment (Spring 2024, question 4): a student's hw5_gan.py.

The tests reach the file through the course's names: DNet(), GNet(zdim), _weight_init, GAN() with its gen, disc and
_dev, _get_loss_d(batch_size, batch_data, z) and _get_loss_g(batch_size, z); the noise z ~ U[-1, 1]^zdim is drawn by
the tests, as the course's training loop does. The networks are graded by their parameters and by what they
compute (recomputed here with torch.nn.functional), so modules or functional calls, any registration order, extra
attributes or nn.Sequential all earn the points; the losses on fixed logits against binary cross-entropy computed by
hand (D's as the sum or the mean of its two terms); a short training on real MNIST by a digit classifier.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hw5_utils
from grading import manual_seed

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def uniform_noise(n: int, zdim: int, device="cpu") -> torch.Tensor:
    """The course's noise z ~ U[-1, 1]^zdim, (n, zdim), from torch's global generator."""
    return (2 * torch.rand(n, zdim) - 1).to(device)


def layer(net: nn.Module, kind: type, shape: tuple) -> nn.Module:
    """The one layer of a kind whose weight has this shape."""
    found = [m for m in net.modules() if isinstance(m, kind) and tuple(m.weight.shape) == shape]
    assert len(found) == 1, (f"{type(net).__name__} has {len(found)} {kind.__name__} layers with weights of shape "
                             f"{shape}: the handout's has one")
    return found[0]


def device_of(gan) -> torch.device:
    return torch.device(getattr(gan, "_dev", None) or next(gan.gen.parameters()).device)


# ----------------------------------------------------------------------------------------------------
# 4.a-c: the networks


def test_4a_dnet(hw5_gan):
    """conv 1->2 (3x3, pad 1), ReLU, max-pool 2; conv 2->4 (pad 1), ReLU, max-pool 2; conv 4->8 (pad 0), ReLU; linear
    200->1: 593 parameters, logits (B, 1)."""
    manual_seed(0)
    dnet = hw5_gan.DNet()
    conv1, conv2, conv3 = (layer(dnet, nn.Conv2d, shape) for shape in ((2, 1, 3, 3), (4, 2, 3, 3), (8, 4, 3, 3)))
    fc = layer(dnet, nn.Linear, (1, 200))
    assert n_params(dnet) == 593, f"DNet has {n_params(dnet)} parameters: the handout's has 593"
    x = torch.rand(5, 1, 28, 28)
    h = F.max_pool2d(F.relu(F.conv2d(x, conv1.weight, conv1.bias, padding=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, conv2.weight, conv2.bias, padding=1)), 2)
    h = F.relu(F.conv2d(h, conv3.weight, conv3.bias))
    logits = dnet(x)
    assert logits.shape == (5, 1), f"DNet gives logits of shape {tuple(logits.shape)}: (batch_size, 1) asked"
    torch.testing.assert_close(logits, F.linear(h.flatten(1), fc.weight, fc.bias),
                               msg="DNet's forward is not conv-ReLU-maxpool, conv-ReLU-maxpool, conv-ReLU, linear")


def test_4b_gnet(hw5_gan):
    """linear zdim->1568, LeakyReLU(0.2), view (32, 7, 7), upsample x2, conv 32->16 (pad 1), LeakyReLU(0.2),
    upsample x2, conv 16->8, LeakyReLU(0.2), conv 8->1, sigmoid: (B, 1, 28, 28) in (0, 1)."""
    manual_seed(0)
    for zdim in (64, 10):
        gnet = hw5_gan.GNet(zdim)
        fc = layer(gnet, nn.Linear, (1568, zdim))
        conv1, conv2, conv3 = (layer(gnet, nn.Conv2d, shape) for shape in ((16, 32, 3, 3), (8, 16, 3, 3),
                                                                            (1, 8, 3, 3)))
        expected_count = (zdim * 1568 + 1568) + (16 * 32 * 9 + 16) + (8 * 16 * 9 + 8) + (1 * 8 * 9 + 1)
        assert n_params(gnet) == expected_count, f"GNet({zdim}) has {n_params(gnet)} parameters, not {expected_count}"
        z = uniform_noise(5, zdim)
        images = gnet(z)
        assert images.shape == (5, 1, 28, 28), f"GNet gives images of shape {tuple(images.shape)}: (B, 1, 28, 28)"

        def expected(mode: str) -> torch.Tensor:
            h = F.leaky_relu(F.linear(z, fc.weight, fc.bias), 0.2).view(-1, 32, 7, 7)
            h = F.leaky_relu(F.conv2d(F.interpolate(h, scale_factor=2, mode=mode), conv1.weight, conv1.bias,
                                      padding=1), 0.2)
            h = F.leaky_relu(F.conv2d(F.interpolate(h, scale_factor=2, mode=mode), conv2.weight, conv2.bias,
                                      padding=1), 0.2)
            return torch.sigmoid(F.conv2d(h, conv3.weight, conv3.bias, padding=1))

        assert any(torch.allclose(images, expected(mode), atol=1e-5) for mode in ("nearest", "bilinear")), (
            "GNet's forward is not linear-LeakyReLU(0.2)-view, upsample-conv-LeakyReLU(0.2) twice, conv-sigmoid")


def test_4c_weight_init(hw5_gan):
    """_weight_init: kaiming-uniform weights (U(-b, b), b = sqrt(6 / fan_in)) and zero biases, every layer of
    both networks."""
    manual_seed(0)
    for net in (hw5_gan.DNet(), hw5_gan.GNet(64)):
        weighted = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(weighted) == 4
        with torch.no_grad():  # spoil them: _weight_init must set every one again
            for module in weighted:
                module.weight.fill_(3.0)
                module.bias.fill_(1.0)
        net._weight_init()
        for module in weighted:
            bound = math.sqrt(6 / module.weight[0].numel())
            weight = module.weight.detach()
            assert torch.all(module.bias == 0), f"{type(net).__name__}: biases not zero"
            assert weight.abs().max() <= bound * (1 + 1e-6), f"{type(net).__name__}: weights beyond sqrt(6 / fan_in)"
            # PyTorch's default init has bound b / sqrt(6); these samples reach near b itself
            assert weight.abs().max() > 0.7 * bound, f"{type(net).__name__}: not kaiming-uniform"
            if weight.numel() >= 1000:  # the uniform's standard deviation b / sqrt(3), within 10%
                assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


# ----------------------------------------------------------------------------------------------------
# 4.d-e: the losses, against binary cross-entropy computed by hand on fixed logits

REAL_LOGITS = [2.0, -1.0, 0.5]
FAKE_LOGITS = [-3.0, 0.25, 1.5]


class TopLeftPixel(nn.Module):
    """A stand-in discriminator whose logit is the image's top-left pixel: (N, 1, 28, 28) -> (N, 1), the handout's
    shape, or (N,) (flat) for a loss written for a D that gives (N,)."""

    def __init__(self, flat: bool) -> None:
        super().__init__()
        self.flat = flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 0] if self.flat else x[:, :, 0, 0]


class FirstNoiseToPixel(nn.Module):
    """A stand-in generator: z (N, zdim) -> black images whose top-left pixel is z[:, 0] + shift."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pixel = (z[:, 0] + self.shift).view(-1, 1, 1, 1)
        return F.pad(pixel, (0, 27, 0, 27))


def stub_gan(hw5_gan, flat: bool = False):
    """The student's GAN() with the stand-in networks, on its device `_dev` (the course's attribute)."""
    gan = hw5_gan.GAN()
    gan.disc, gan.gen = TopLeftPixel(flat).to(device_of(gan)), FirstNoiseToPixel().to(device_of(gan))
    return gan


def either_shape(hw5_gan, check) -> None:
    """check(gan) with a stand-in D of the handout's (N, 1) logits and, if that fails, of (N,) logits: a loss is
    graded on its own, whatever shape the student's D gives (a D of the wrong shape costs 4.a)."""
    try:
        check(stub_gan(hw5_gan))
    except Exception as error:
        try:
            check(stub_gan(hw5_gan, flat=True))
        except Exception:
            raise error from None


def images_with_logits(logits: list[float], device) -> torch.Tensor:
    images = torch.zeros(len(logits), 1, 28, 28)
    images[:, 0, 0, 0] = torch.tensor(logits)
    return images.to(device)


def noise_with_logits(logits: list[float], device, zdim: int = 64) -> torch.Tensor:
    z = torch.zeros(len(logits), zdim)
    z[:, 0] = torch.tensor(logits)
    return z.to(device)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_4d_loss_d(hw5_gan):
    """BCE with real -> 1 plus BCE with fake -> 0, each averaged over the batch; their sum, or their mean (one BCE
    over all 2B logits)."""
    def check(gan):
        device = device_of(gan)
        loss = gan._get_loss_d(3, images_with_logits(REAL_LOGITS, device), noise_with_logits(FAKE_LOGITS, device))
        total = (sum(-math.log(sigmoid(r)) for r in REAL_LOGITS) / 3
                 + sum(-math.log(1 - sigmoid(f)) for f in FAKE_LOGITS) / 3)
        assert any(loss.item() == pytest.approx(value, rel=1e-5) for value in (total, total / 2)), (
            f"_get_loss_d = {loss.item():.5f}; BCE(D(x), 1) + BCE(D(G(z)), 0) is {total:.5f} here (or "
            f"{total / 2:.5f} as their mean)")
        # a perfect discriminator has (almost) no loss
        perfect = gan._get_loss_d(3, images_with_logits([20.0] * 3, device), noise_with_logits([-20.0] * 3, device))
        assert perfect.item() == pytest.approx(0, abs=1e-6), "a perfect discriminator must have (almost) zero loss"

    either_shape(hw5_gan, check)


def test_4e_loss_g(hw5_gan):
    """The non-saturating generator loss, mean -log D(G(z)): its value, and its gradient where D rejects the
    fakes (logit -8, D(G(z)) = 3e-4): about -1 per logit, where log(1 - D(G(z))) would give only -D(G(z))."""
    def check(gan):
        device = device_of(gan)
        loss = gan._get_loss_g(3, noise_with_logits(FAKE_LOGITS, device))
        expected = sum(-math.log(sigmoid(f)) for f in FAKE_LOGITS) / 3
        assert loss.item() == pytest.approx(expected, rel=1e-5), (
            f"_get_loss_g = {loss.item():.5f}; the mean of -log D(G(z)) is {expected:.5f} here")
        rejected = [-8.0, -7.0, -9.0]
        gan._get_loss_g(3, noise_with_logits(rejected, device)).backward()
        assert gan.gen.shift.grad.item() == pytest.approx(-sum(1 - sigmoid(x) for x in rejected) / 3, rel=1e-4), (
            "the generator loss's gradient vanishes where D rejects the fakes: use -log D(G(z)), not "
            "log(1 - D(G(z)))")

    either_shape(hw5_gan, check)


# ----------------------------------------------------------------------------------------------------
# 4.f: a short training on real MNIST, judged by the MNIST classifier

GAN_STEPS = 300        # the course's D and G updates, on batches of 64 (calibrated in the README)


def judged_frechet(gen: nn.Module, z: torch.Tensor, judge, mnist_grey) -> float:
    """The judge's Fréchet distance between G(z) and real test digits (generated 250 at a time: little memory)."""
    with torch.no_grad():
        samples = torch.cat([gen(part).cpu() for part in z.split(250)])
    return hw5_utils.judge_digits(judge, samples, mnist_grey)["frechet_distance"]


def test_4f_training(hw5_gan, mnist_grey, judge):
    """300 steps of the course's loop (Adam at 1e-3 on _get_loss_d, then on _get_loss_g, same z, batches of 64) bring
    the MNIST judge's Fréchet distance of G's samples to real digits below 0.65 of the untrained generator's (correct
    files 0.24-0.38 over 12 seeds; broken losses about 1)."""
    gan = hw5_gan.GAN()
    manual_seed(20)
    device = device_of(gan)
    images = mnist_grey.train_images.view(-1, 1, 28, 28).to(device)
    z_eval = uniform_noise(2000, 64, device)
    before = judged_frechet(gan.gen, z_eval, judge, mnist_grey)
    opt_d = torch.optim.Adam(gan.disc.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(gan.gen.parameters(), lr=1e-3)
    for _ in range(GAN_STEPS):
        data, z = images[torch.randint(len(images), (64,)).to(device)], uniform_noise(64, 64, device)
        opt_d.zero_grad()
        gan._get_loss_d(64, data, z).backward()
        opt_d.step()
        opt_g.zero_grad()
        gan._get_loss_g(64, z).backward()
        opt_g.step()
    after = judged_frechet(gan.gen, z_eval, judge, mnist_grey)
    assert after < 0.65 * before, (f"the Fréchet distance of G's samples to real digits went from {before:.0f} to "
                                   f"{after:.0f} in {GAN_STEPS} steps of training on your losses: it must fall below "
                                   f"0.65 of where it started")
