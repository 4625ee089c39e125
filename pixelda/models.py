"""nn.Modules only: PixelDA's generator, discriminator and task classifier (Bousmalis et al. 2017),
and the conditional GAN's generator and discriminator (Mirza & Osindero 2014).

Every size is a keyword argument; images are NCHW float32 in [-1, 1]. Layer choices follow the
official code (tensorflow/models, research/domain_adaptation/pixel_domain_adaptation).
"""

import torch
from torch import nn

# Official batch_norm_params: decay 0.9 (torch momentum 0.1), epsilon 0.001.
BN_EPS = 1e-3
BN_MOMENTUM = 0.1


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """Official weights_initializer: N(0, 0.02) for conv and linear weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input (official resnet_block)."""

    def __init__(self, *, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            _bn2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            _bn2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """G(x_src, z): maps a source image and noise z ~ U(-1, 1)^latent_dim to a target-style image.

    z goes through a fully connected layer (BN, ReLU) to one image-sized channel that is
    concatenated to the source; then a 3x3 conv, residual blocks and a 1x1 conv with tanh.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        image_size: int,
        latent_dim: int = 10,
        width: int = 64,
        blocks: int = 6,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.image_size = image_size
        if latent_dim > 0:
            self.noise = nn.Sequential(
                nn.Linear(latent_dim, image_size * image_size, bias=False),
                nn.BatchNorm1d(image_size * image_size, eps=BN_EPS, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            )
        stem_in = in_channels + (1 if latent_dim > 0 else 0)
        self.stem = nn.Sequential(nn.Conv2d(stem_in, width, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(width=width) for _ in range(blocks)])
        self.out = nn.Sequential(nn.Conv2d(width, out_channels, 1), nn.Tanh())
        init_normal(self)

    def forward(self, x_src: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """x_src: (B, C_in, S, S) in [-1, 1]; z: (B, latent_dim) in [-1, 1] -> (B, C_out, S, S)."""
        if self.latent_dim > 0:
            if z is None:
                raise ValueError("this generator needs noise z of shape (B, latent_dim)")
            noise = self.noise(z).view(-1, 1, self.image_size, self.image_size)
            x_src = torch.cat([x_src, noise], dim=1)
        return self.out(self.blocks(self.stem(x_src)))


def _random_like(x: torch.Tensor, fill) -> torch.Tensor:
    """A tensor shaped and laid out like x (channels_last stays channels_last), filled by
    fill(flat) through one flat view of its memory. torch's vectorised CPU random kernels need
    contiguous memory: randn_like on a channels_last tensor takes an element-by-element path,
    measured 4x slower, which made --channels-last lose (README, Speed flags)."""
    out = torch.empty_like(x)  # dense, in x's memory format
    fill(out.as_strided((out.numel(),), (1,)))
    return out


class NoisyDropout(nn.Module):
    """In training only: dropout, then additive Gaussian noise (official discriminator add_noise).

    out = x * keep / (1 - p) + noise, keep ~ Bernoulli(1 - p), noise ~ N(0, noise_std^2): what
    nn.Dropout followed by x + randn_like(x) * noise_std computes, in one fused multiply-add."""

    def __init__(self, *, dropout: float, noise_std: float):
        super().__init__()
        self.dropout = dropout
        self.noise_std = noise_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.dropout == 0 and self.noise_std == 0):
            return x
        if self.noise_std == 0:
            noise = torch.zeros_like(x)
        else:
            noise = _random_like(x, lambda flat: flat.normal_(0.0, self.noise_std))
        if self.dropout == 0:
            return x + noise
        keep = _random_like(x, lambda flat: flat.bernoulli_(1.0 - self.dropout))
        return torch.addcmul(noise, x, keep, value=1.0 / (1.0 - self.dropout))

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, noise_std={self.noise_std}"


def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class Discriminator(nn.Module):
    """D(x): one logit, real target image vs adapted image.

    A stride-1 3x3 conv with `width` filters, then stride-2 3x3 convs doubling the filters
    until the map is at most 4x4; BN (not on the first layer) and LeakyReLU(0.2);
    dropout and Gaussian noise after every conv in training.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        width: int = 64,
        dropout: float = 0.1,
        noise_std: float = 0.2,
    ):
        super().__init__()
        layers = [
            nn.Conv2d(in_channels, width, 3, padding=1),
            _leaky(),
            NoisyDropout(dropout=dropout, noise_std=noise_std),
        ]
        size, channels = image_size, width
        while size > 4:
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=False),
                _bn2d(channels * 2),
                _leaky(),
                NoisyDropout(dropout=dropout, noise_std=noise_std),
            ]
            size, channels = (size + 1) // 2, channels * 2
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(channels * size * size, 1)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, S, S) in [-1, 1] -> (B,) logits."""
        return self.logit(self.features(x).flatten(1)).squeeze(1)


class TaskClassifier(nn.Module):
    """T(x): the DANN MNIST tower (Ganin et al. 2016) used by PixelDA, returning logits.

    `features` (conv5x5-32, max-pool, conv5x5-48, max-pool) and `head` (FC100, FC100,
    FC-outputs) are separate so DANN can put its domain classifier on the features.
    """

    def __init__(self, *, in_channels: int, image_size: int, num_outputs: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.feature_dim = 48 * (image_size // 4) ** 2
        self.head = nn.Sequential(
            nn.Linear(self.feature_dim, 100),
            nn.ReLU(inplace=True),
            nn.Linear(100, 100),
            nn.ReLU(inplace=True),
            nn.Linear(100, num_outputs),
        )

    def forward(self, x: torch.Tensor, *, with_features: bool = False):
        """x: (B, C, S, S) in [-1, 1] -> (B, num_outputs) logits, and with `with_features`
        also the (B, feature_dim) features they came from (one call, as DDP wants)."""
        features = self.features(x)
        logits = self.head(features)
        return (logits, features) if with_features else logits


class DomainClassifier(nn.Module):
    """DANN's domain classifier on task features: one logit, source (0) vs target (1).

    `layers` times (FC `hidden`, ReLU), then FC 1. Ganin et al. 2016 (Sec. 5.2.2, Fig. 4): one
    layer of 100 for MNIST, two of 1024 for their larger networks. It sits behind a gradient
    reversal layer, which the method applies, not this module.
    """

    def __init__(self, *, in_features: int, hidden: int = 100, layers: int = 1):
        super().__init__()
        sizes = [in_features] + [hidden] * layers
        blocks = [[nn.Linear(a, b), nn.ReLU(inplace=True)] for a, b in zip(sizes, sizes[1:])]
        self.net = nn.Sequential(*[m for block in blocks for m in block], nn.Linear(sizes[-1], 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, in_features) -> (B,) logits."""
        return self.net(features).squeeze(1)


class ConditionalGenerator(nn.Module):
    """G(z, y) of the conditional GAN (Mirza & Osindero 2014), DCGAN-style (Radford et al. 2016).

    [z, embedding(y)] -> linear -> (2 width, S/4, S/4) -> two stride-2 transposed convs ->
    (C, S, S) with tanh. BN keeps torch's eps (not the 0.8 of `BatchNorm1d(n, 0.8)` scripts).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        out_channels: int,
        image_size: int,
        latent_dim: int = 100,
        embed_dim: int = 10,
        width: int = 32,
    ):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.num_classes, self.latent_dim, self.base = num_classes, latent_dim, image_size // 4
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.fc = nn.Linear(latent_dim + embed_dim, 2 * width * self.base**2, bias=False)
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )
        init_normal(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) in [-1, 1]; y: int64 (B,) class labels -> (B, C, S, S) in [-1, 1]."""
        h = self.fc(torch.cat([z, self.embed(y)], dim=1))
        return self.body(h.view(z.size(0), -1, self.base, self.base))


class ConditionalDiscriminator(nn.Module):
    """D(x, y) of the conditional GAN: one logit, real (x, y) pair vs generated.

    The label enters twice: as a learned image-sized map concatenated to x (Mirza & Osindero
    2014), and as a projection of the features (Miyato & Koyama 2018) so that a D that has
    learned "digit or not" still has to check "which digit". Two stride-2 4x4 convs with
    LeakyReLU(0.2), BN on the second (DCGAN; measured: 89% vs 79% conditional accuracy after
    1,000 steps on MNIST without it).
    """

    def __init__(self, *, num_classes: int, in_channels: int, image_size: int, width: int = 32):
        super().__init__()
        self.image_size = image_size
        self.label_map = nn.Embedding(num_classes, image_size * image_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels + 1, width, 4, stride=2, padding=1),
            _leaky(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            _leaky(),
            nn.Flatten(),
        )
        feature_dim = 2 * width * (image_size // 4) ** 2
        self.logit = nn.Linear(feature_dim, 1)
        self.project = nn.Embedding(num_classes, feature_dim)
        init_normal(self)
        nn.init.normal_(self.project.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B, C, S, S) in [-1, 1]; y: int64 (B,) class labels -> (B,) logits."""
        s = self.image_size
        h = self.features(torch.cat([x, self.label_map(y).view(-1, 1, s, s)], dim=1))
        return self.logit(h).squeeze(1) + (self.project(y) * h).sum(1)
