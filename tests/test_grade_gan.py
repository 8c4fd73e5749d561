"""The graded tests of the `gan` assignment (Spring 2024, question 4): a student's hw5_gan.py.

Each test is a probe, which calls the student's file through the course's names (DNet(), GNet(zdim), _weight_init,
GAN() with its gen, disc and _dev, _get_loss_d(batch_size, batch_data, z), _get_loss_g(batch_size, z)) and returns
data, and a verdict on that data (tests/grading.py). The noise z ~ U[-1, 1]^zdim is drawn by the tests, as the
course's training loop does. The networks are graded by their parameters and by what they compute (recomputed here
with torch.nn.functional), so modules or functional calls, any registration order, extra attributes or
nn.Sequential all earn the points; the losses on fixed logits against binary cross-entropy computed by hand (D's as
the sum or the mean of its two terms); a short training on real MNIST by a digit classifier.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hw5_utils
from grading import as_number, manual_seed

pytestmark = pytest.mark.usefixtures("one_thread")


def uniform_noise(n: int, zdim: int, device="cpu") -> torch.Tensor:
    """The course's noise z ~ U[-1, 1]^zdim, (n, zdim), from torch's global generator."""
    return (2 * torch.rand(n, zdim) - 1).to(device)


def device_of(gan) -> torch.device:
    return torch.device(getattr(gan, "_dev", None) or next(gan.gen.parameters()).device)


def layers_of(net: nn.Module) -> dict:
    """In the worker: a network's Conv2d and Linear layers (kind, weight, bias) and its parameter count."""
    found = [{"kind": "Conv2d" if isinstance(m, nn.Conv2d) else "Linear", "weight": m.weight, "bias": m.bias}
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return {"layers": found, "parameters": sum(p.numel() for p in net.parameters())}


def layer(found: dict, kind: str, shape: tuple, net: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The one layer of a kind whose weight has this shape -> (weight, bias) as tensors."""
    matches = [m for m in found["layers"] if m["kind"] == kind and m["weight"].shape == shape]
    assert len(matches) == 1, f"{net} has {len(matches)} {kind} layers with weights of shape {shape}: the handout's has one"
    weight, bias = matches[0]["weight"], matches[0]["bias"]
    return torch.from_numpy(weight), None if bias is None else torch.from_numpy(bias)


# ----------------------------------------------------------------------------------------------------
# 4.a-c: the networks


def dnet_probe(hw5_gan, x: torch.Tensor) -> dict:
    manual_seed(0)
    dnet = hw5_gan.DNet()
    return {**layers_of(dnet), "logits": dnet(x)}


def test_4a_dnet(probe):
    """conv 1->2 (3x3, pad 1), ReLU, max-pool 2; conv 2->4 (pad 1), ReLU, max-pool 2; conv 4->8 (pad 0), ReLU; linear
    200->1: 593 parameters, logits (B, 1)."""
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    found = probe(dnet_probe, x)
    conv1, conv2, conv3 = (layer(found, "Conv2d", shape, "DNet") for shape in ((2, 1, 3, 3), (4, 2, 3, 3),
                                                                              (8, 4, 3, 3)))
    fc = layer(found, "Linear", (1, 200), "DNet")
    assert found["parameters"] == 593, f"DNet has {found['parameters']} parameters: the handout's has 593"
    h = F.max_pool2d(F.relu(F.conv2d(x, *conv1, padding=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, *conv2, padding=1)), 2)
    h = F.relu(F.conv2d(h, *conv3))
    logits = torch.from_numpy(found["logits"])
    assert logits.shape == (5, 1), f"DNet gives logits of shape {tuple(logits.shape)}: (batch_size, 1) asked"
    torch.testing.assert_close(logits, F.linear(h.flatten(1), *fc),
                               msg="DNet's forward is not conv-ReLU-maxpool, conv-ReLU-maxpool, conv-ReLU, linear")


def handout_generator(z: torch.Tensor, fc, conv1, conv2, conv3, mode: str = "nearest") -> torch.Tensor:
    """The handout's G(z), (B, 1, 28, 28), by torch.nn.functional from its layers' (weight, bias) pairs."""
    h = F.leaky_relu(F.linear(z, *fc), 0.2).view(-1, 32, 7, 7)
    h = F.leaky_relu(F.conv2d(F.interpolate(h, scale_factor=2, mode=mode), *conv1, padding=1), 0.2)
    h = F.leaky_relu(F.conv2d(F.interpolate(h, scale_factor=2, mode=mode), *conv2, padding=1), 0.2)
    return torch.sigmoid(F.conv2d(h, *conv3, padding=1))


def gnet_probe(hw5_gan, noises: dict) -> dict:
    manual_seed(0)
    found = {}
    for zdim, z in noises.items():
        gnet = hw5_gan.GNet(int(zdim))
        found[zdim] = {**layers_of(gnet), "images": gnet(z)}
    return found


def test_4b_gnet(probe):
    """linear zdim->1568, LeakyReLU(0.2), view (32, 7, 7), upsample x2, conv 32->16 (pad 1), LeakyReLU(0.2),
    upsample x2, conv 16->8, LeakyReLU(0.2), conv 8->1, sigmoid: (B, 1, 28, 28) in (0, 1)."""
    manual_seed(0)
    noises = {str(zdim): uniform_noise(5, zdim) for zdim in (64, 10)}
    built = probe(gnet_probe, noises)
    for zdim, z in ((int(zdim), z) for zdim, z in noises.items()):
        found = built[str(zdim)]
        fc = layer(found, "Linear", (1568, zdim), f"GNet({zdim})")
        conv1, conv2, conv3 = (layer(found, "Conv2d", shape, f"GNet({zdim})") for shape in ((16, 32, 3, 3),
                                                                                           (8, 16, 3, 3), (1, 8, 3, 3)))
        expected_count = (zdim * 1568 + 1568) + (16 * 32 * 9 + 16) + (8 * 16 * 9 + 8) + (1 * 8 * 9 + 1)
        assert found["parameters"] == expected_count, (f"GNet({zdim}) has {found['parameters']} parameters, not "
                                                       f"{expected_count}")
        images = torch.from_numpy(found["images"])
        assert images.shape == (5, 1, 28, 28), f"GNet gives images of shape {tuple(images.shape)}: (B, 1, 28, 28)"
        assert any(torch.allclose(images, handout_generator(z, fc, conv1, conv2, conv3, mode), atol=1e-5)
                   for mode in ("nearest", "bilinear")), (
            "GNet's forward is not linear-LeakyReLU(0.2)-view, upsample-conv-LeakyReLU(0.2) twice, conv-sigmoid")


def weight_init_probe(hw5_gan) -> dict:
    """Each network as its constructor leaves it, and, where _weight_init has the course's signature (self alone),
    after _weight_init() redoes weights spoilt on purpose."""
    manual_seed(0)
    found = {}
    for name, net in (("DNet", hw5_gan.DNet()), ("GNet", hw5_gan.GNet(64))):
        found[name] = {"constructed": layers_of(net)["layers"]}
        method = getattr(net, "_weight_init", None)
        if callable(method) and not inspect.signature(method).parameters:
            with torch.no_grad():
                for module in net.modules():
                    if isinstance(module, (nn.Conv2d, nn.Linear)):
                        module.weight.fill_(3.0)
                        module.bias.fill_(1.0)
            method()
            found[name]["_weight_init()"] = layers_of(net)["layers"]
    return found


def test_4c_weight_init(probe):
    """Kaiming-uniform weights (U(-b, b), b = sqrt(6 / fan_in)) and zero biases in every layer of both networks, as
    DNet() and GNet(64) come out of their constructors; and after _weight_init() where it takes no argument but self
    (the course's signature; `_weight_init(self, m)` applied with self.apply is judged by the constructed networks)."""
    found_nets = probe(weight_init_probe)
    assert set(found_nets) == {"DNet", "GNet"} and all("constructed" in states for states in found_nets.values())
    for net, states in found_nets.items():
        for when, found in states.items():
            assert len(found) == 4, f"{net} has {len(found)} Conv2d and Linear layers: the handout's has 4"
            for module in found:
                weight, bias = module["weight"].astype(np.float64), module["bias"]
                bound = math.sqrt(6 / weight[0].size)
                assert bias is not None and np.all(bias == 0), f"{net}: biases not zero ({when})"
                assert np.abs(weight).max() <= bound * (1 + 1e-6), f"{net}: weights beyond sqrt(6 / fan_in) ({when})"
                # PyTorch's default init has bound b / sqrt(6); these samples reach near b itself
                assert np.abs(weight).max() > 0.7 * bound, f"{net}: not kaiming-uniform ({when})"
                if weight.size >= 1000:  # the uniform's standard deviation b / sqrt(3), within 10%
                    assert weight.std(ddof=1) == pytest.approx(bound / math.sqrt(3), rel=0.1), (
                        f"{net}: not kaiming-uniform ({when})")


# ----------------------------------------------------------------------------------------------------
# 4.d-e: the losses, against binary cross-entropy computed by hand on fixed logits

REAL_LOGITS = [2.0, -1.0, 0.5]
FAKE_LOGITS = [-3.0, 0.25, 1.5]
REJECTED_LOGITS = [-8.0, -7.0, -9.0]


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


def images_with_logits(logits: list[float], device) -> torch.Tensor:
    images = torch.zeros(len(logits), 1, 28, 28)
    images[:, 0, 0, 0] = torch.tensor(logits)
    return images.to(device)


def noise_with_logits(logits: list[float], device, zdim: int = 64) -> torch.Tensor:
    z = torch.zeros(len(logits), zdim)
    z[:, 0] = torch.tensor(logits)
    return z.to(device)


def with_stand_ins(hw5_gan, measure) -> dict:
    """In the worker: measure(gan, device) for the student's GAN() with the stand-in networks, with a stand-in D of
    the handout's (N, 1) logits and of (N,) logits: a loss is graded on its own, whatever shape the student's D gives
    (a D of the wrong shape costs 4.a). -> {"shaped"/"flat": measure's data, or None where it raised}; if it raises
    with both, the first exception."""
    found, errors = {}, []
    for form in ("shaped", "flat"):
        gan = hw5_gan.GAN()
        device = device_of(gan)
        gan.disc, gan.gen = TopLeftPixel(form == "flat").to(device), FirstNoiseToPixel().to(device)
        try:
            found[form] = measure(gan, device)
        except Exception as error:  # noqa: BLE001 - the other shape may work
            found[form] = None
            errors.append(error)
    if len(errors) == 2:
        raise errors[0]
    return found


def either_shape(found: dict, check) -> None:
    """check(data) on the probe's measurements with the handout's D shape and, if they fail it, with the flat one;
    the first failure is reported if both fail."""
    failures = []
    for form in ("shaped", "flat"):
        try:
            assert found[form] is not None, "the loss raised an exception with a discriminator of this shape"
            check(found[form])
            return
        except AssertionError as failure:
            failures.append(failure)
    raise failures[0]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def loss_d_probe(hw5_gan) -> dict:
    def measure(gan, device):
        return {"loss": as_number(gan._get_loss_d(3, images_with_logits(REAL_LOGITS, device),
                                                  noise_with_logits(FAKE_LOGITS, device))),
                "perfect": as_number(gan._get_loss_d(3, images_with_logits([20.0] * 3, device),
                                                     noise_with_logits([-20.0] * 3, device)))}
    return with_stand_ins(hw5_gan, measure)


def test_4d_loss_d(probe):
    """BCE with real -> 1 plus BCE with fake -> 0, each averaged over the batch; their sum, or their mean (one BCE
    over all 2B logits)."""
    found = probe(loss_d_probe)
    total = (sum(-math.log(sigmoid(r)) for r in REAL_LOGITS) / 3 + sum(-math.log(1 - sigmoid(f)) for f in FAKE_LOGITS)
             / 3)

    def check(data):
        assert any(math.isclose(data["loss"], value, rel_tol=1e-5) for value in (total, total / 2)), (
            f"_get_loss_d = {data['loss']:.5f}; BCE(D(x), 1) + BCE(D(G(z)), 0) is {total:.5f} here (or "
            f"{total / 2:.5f} as their mean)")
        assert abs(data["perfect"]) <= 1e-6, "a perfect discriminator must have (almost) zero loss"

    either_shape(found, check)


def loss_g_probe(hw5_gan) -> dict:
    def measure(gan, device):
        loss = as_number(gan._get_loss_g(3, noise_with_logits(FAKE_LOGITS, device)))
        gan._get_loss_g(3, noise_with_logits(REJECTED_LOGITS, device)).backward()
        return {"loss": loss, "gradient": as_number(gan.gen.shift.grad)}
    return with_stand_ins(hw5_gan, measure)


def test_4e_loss_g(probe):
    """The non-saturating generator loss, mean -log D(G(z)): its value, and its gradient where D rejects the
    fakes (logit -8, D(G(z)) = 3e-4): about -1 per logit, where log(1 - D(G(z))) would give only -D(G(z))."""
    found = probe(loss_g_probe)
    expected = sum(-math.log(sigmoid(f)) for f in FAKE_LOGITS) / 3
    gradient = -sum(1 - sigmoid(x) for x in REJECTED_LOGITS) / 3

    def check(data):
        assert math.isclose(data["loss"], expected, rel_tol=1e-5), (
            f"_get_loss_g = {data['loss']:.5f}; the mean of -log D(G(z)) is {expected:.5f} here")
        assert math.isclose(data["gradient"], gradient, rel_tol=1e-4), (
            "the generator loss's gradient vanishes where D rejects the fakes: use -log D(G(z)), not "
            "log(1 - D(G(z)))")

    either_shape(found, check)


# ----------------------------------------------------------------------------------------------------
# 4.f: a short training on real MNIST, judged by the MNIST classifier

GAN_STEPS = 300        # the course's D and G updates, on batches of 64 (calibrated in the README)


def training_probe(hw5_gan, images: torch.Tensor) -> np.ndarray:
    """The course's loop with the student's GAN: G's samples of a fixed noise after GAN_STEPS steps."""
    gan = hw5_gan.GAN()
    manual_seed(20)
    device = device_of(gan)
    images = images.view(-1, 1, 28, 28).to(device)
    z_eval = uniform_noise(2000, 64, device)
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
    with torch.no_grad():  # 250 at a time: little memory
        return torch.cat([gan.gen(part).cpu() for part in z_eval.split(250)])


def judged_frechet(samples: torch.Tensor, judge, mnist_grey) -> float:
    """The judge's Fréchet distance between samples (N, 1, 28, 28) and real test digits."""
    return hw5_utils.judge_digits(judge, samples.float(), mnist_grey)["frechet_distance"]


def untrained_frechet(judge, mnist_grey) -> float:
    """The judge's Fréchet distance of an untrained handout generator's samples (kaiming-uniform weights, zero biases,
    as _weight_init sets them; computed here, from a fixed seed): what training must improve on."""
    generator = torch.Generator().manual_seed(0)

    def initialised(*shape: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = math.sqrt(6 / math.prod(shape[1:]))
        return (2 * torch.rand(shape, generator=generator) - 1) * bound, torch.zeros(shape[0])

    z = 2 * torch.rand(2000, 64, generator=generator) - 1
    with torch.no_grad():
        samples = handout_generator(z, initialised(1568, 64), initialised(16, 32, 3, 3), initialised(8, 16, 3, 3),
                                    initialised(1, 8, 3, 3))
    return judged_frechet(samples, judge, mnist_grey)


# A sample this close (L2, pixels in [0, 1]) to an image of the MNIST file is a copy of it: the reference's samples
# after GAN_STEPS lie at least 3.1 from every training image, 99% of them beyond 4.9.
COPY_DISTANCE = 4.0


def copied(samples: torch.Tensor, mnist_grey) -> float:
    """The share of samples (N, 1, 28, 28) within COPY_DISTANCE of one of the MNIST file's images."""
    images = torch.cat([mnist_grey.train_images, mnist_grey.test_images])
    nearest = torch.cat([torch.cdist(part, images).min(1).values for part in samples.flatten(1).split(500)])
    return (nearest < COPY_DISTANCE).float().mean().item()


def test_4f_training(probe, mnist_grey, request):
    """300 steps of the course's loop (Adam at 1e-3 on _get_loss_d, then on _get_loss_g, same z, batches of 64) bring
    the MNIST judge's Fréchet distance of G's samples to real digits below 0.65 of an untrained generator's (correct
    files 0.24-0.38 of their own untrained generator's over 12 seeds; broken losses about 1); samples that are copies
    of MNIST images do not count."""
    samples = torch.from_numpy(probe(training_probe, mnist_grey.train_images)).float()
    assert samples.shape == (2000, 1, 28, 28), f"G gives samples of shape {tuple(samples.shape)}: (N, 1, 28, 28)"
    assert 0 <= samples.min() and samples.max() <= 1, "G's samples are not images in [0, 1] (a sigmoid's output)"
    share = copied(samples, mnist_grey)
    assert share < 0.1, (f"{share:.0%} of G's samples are copies of MNIST images: G(z) must generate them, not "
                         f"return the data")
    judge = request.getfixturevalue("judge")  # loaded only now: the probe's worker never held it
    before, after = untrained_frechet(judge, mnist_grey), judged_frechet(samples, judge, mnist_grey)
    assert after < 0.65 * before, (f"the Fréchet distance of G's samples to real digits is {after:.0f} after "
                                   f"{GAN_STEPS} steps of training on your losses, an untrained generator's "
                                   f"{before:.0f}: it must fall below 0.65 of that")
