import pytest
import torch

from pixelda.models import Discriminator, Generator, NoisyDropout, TaskClassifier


@pytest.mark.parametrize("size", [16, 28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shape_and_range(size, channels):
    torch.manual_seed(0)
    g = Generator(
        in_channels=channels, out_channels=3, image_size=size, latent_dim=10, width=8, blocks=1
    )
    out = g(torch.rand(4, channels, size, size) * 2 - 1, torch.rand(4, 10) * 2 - 1)
    assert out.shape == (4, 3, size, size)
    assert out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1


def test_generator_output_depends_on_noise_and_can_go_without_it():
    torch.manual_seed(0)
    g = Generator(in_channels=3, out_channels=3, image_size=16, width=8, blocks=1).eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    z1, z2 = torch.rand(4, 10) * 2 - 1, torch.rand(4, 10) * 2 - 1
    assert not torch.allclose(g(x, z1), g(x, z2))
    assert torch.equal(g(x, z1), g(x, z1))
    g0 = Generator(in_channels=3, out_channels=3, image_size=16, latent_dim=0, width=8, blocks=1)
    assert g0(x).shape == (4, 3, 16, 16)
    with pytest.raises(ValueError):
        g(x)


@pytest.mark.parametrize("size,final", [(16, 4), (28, 4), (32, 4), (64, 4), (128, 4), (20, 3)])
def test_discriminator_halves_until_at_most_4x4(size, final):
    d = Discriminator(in_channels=3, image_size=size, width=8)
    feats = d.features(torch.zeros(2, 3, size, size))
    assert feats.shape[-1] == final and feats.shape[-2] == final
    assert d(torch.zeros(2, 3, size, size)).shape == (2,)
    strides = [m.stride[0] for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides[0] == 1 and all(s == 2 for s in strides[1:])
    widths = [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [8 * 2**i for i in range(len(widths))]


def test_discriminator_noise_and_dropout_only_in_training():
    torch.manual_seed(0)
    d = Discriminator(in_channels=3, image_size=16, width=8)
    x = torch.rand(4, 3, 16, 16)
    d.train()
    assert not torch.equal(d(x), d(x))
    d.eval()
    assert torch.equal(d(x), d(x))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_noisy_dropout_drops_scales_and_adds_gaussian_noise(memory_format):
    torch.manual_seed(0)
    x = torch.full((64, 8, 32, 32), 3.0).contiguous(memory_format=memory_format)
    dropped = NoisyDropout(dropout=0.25, noise_std=0.0)(x)
    assert dropped.is_contiguous(memory_format=memory_format)
    assert set(dropped.unique().tolist()) == {0.0, 4.0}  # kept entries scaled by 1 / (1 - 0.25)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.25, abs=0.005)
    noisy = NoisyDropout(dropout=0.0, noise_std=0.5)(x) - 3.0
    assert noisy.is_contiguous(memory_format=memory_format)
    assert noisy.mean().item() == pytest.approx(0.0, abs=0.005)
    assert noisy.std().item() == pytest.approx(0.5, abs=0.005)
    both = NoisyDropout(dropout=0.25, noise_std=0.5)(x)
    assert (both.abs() < 2.0).float().mean().item() == pytest.approx(0.25, abs=0.01)  # dropped
    assert both[both > 2.0].std().item() == pytest.approx(0.5, abs=0.01)  # kept: 4 + noise
    layer = NoisyDropout(dropout=0.25, noise_std=0.5).eval()
    assert layer(x) is x


@pytest.mark.parametrize("size", [16, 32, 64])
def test_task_classifier_returns_logits(size):
    t = TaskClassifier(in_channels=3, image_size=size, num_outputs=10)
    logits = t(torch.rand(5, 3, size, size) * 2 - 1)
    assert logits.shape == (5, 10)
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))  # raw logits, no softmax
    convs = [m for m in t.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (5, 5)), (48, (5, 5))]
    linears = [m.out_features for m in t.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [100, 100, 10]
