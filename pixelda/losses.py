"""Pure loss functions on tensors: GAN losses on logits, task loss, masked pairwise MSE.

Inputs may be bfloat16 (--amp bf16 autocast); every loss is computed in float32."""

import torch
import torch.nn.functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: real target images are labelled 1, adapted images 0.

    The sum of the two mean binary cross-entropies, as in the official code."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(x, z)) (Goodfellow et al. 2014)."""
    fake_logits = fake_logits.float()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def task_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on logits for int64 class labels (B,); MSE for float targets (B, K)."""
    if targets.dtype.is_floating_point:
        return F.mse_loss(outputs.float(), targets.float())
    return F.cross_entropy(outputs.float(), targets)


def masked_pmse(
    x_fake: torch.Tensor, x_src: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Masked pairwise mean squared error (Bousmalis et al. 2017, Eq. 4).

    Per image, with d = (x_src - x_fake) * mask and k the number of values in the image:
    ||d||^2 / k - (sum d)^2 / k^2, averaged over the batch. It penalises differences between
    pairs of pixels, not absolute values, so the generator may shift the foreground's colour
    but must keep its shape. x_fake, x_src: (B, C, H, W); mask: (B, 1, H, W) in {0, 1}.
    """
    d = x_src.float() - x_fake.float()
    if mask is not None:
        d = d * mask
    d = d.flatten(1)
    k = d.size(1)
    return (d.pow(2).sum(1) / k - d.sum(1).pow(2) / k**2).mean()


def domain_loss(src_logits: torch.Tensor, tgt_logits: torch.Tensor) -> torch.Tensor:
    """DANN's domain loss: mean binary cross-entropy over all images, source 0, target 1.

    One mean over the pooled batch (Ganin et al. 2016), not PixelDA's sum of two means."""
    logits = torch.cat([src_logits, tgt_logits]).float()
    labels = torch.cat([torch.zeros_like(src_logits), torch.ones_like(tgt_logits)]).float()
    return F.binary_cross_entropy_with_logits(logits, labels)


def semantic_consistency(
    fake_logits: torch.Tensor,
    src_logits: torch.Tensor,
    *,
    changed_factor: float = 1.0,
    changed_confidence: float = 0.0,
) -> torch.Tensor:
    """Semantic consistency (Hoffman et al. 2018, CyCADA Eq. 5): cross-entropy of a judge's
    logits on the adapted images (B, K) against the judge's own class on their sources, the
    argmax of src_logits (B, K), which carries no gradient; averaged over the images, those that
    the judge reads as another class with a probability above changed_confidence counted
    changed_factor times."""
    classes = src_logits.detach().argmax(1)
    per_image = F.cross_entropy(fake_logits.float(), classes, reduction="none")
    if changed_factor == 1.0:
        return per_image.mean()
    confidence, read = fake_logits.detach().float().softmax(1).max(1)
    changed = (read != classes) & (confidence > changed_confidence)
    return (per_image * torch.where(changed, changed_factor, 1.0)).mean()
