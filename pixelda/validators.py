"""Label-free model selection: scores of a run's models from unlabeled target images and labeled
source images only, for choosing a run or a checkpoint when the target has no labels.

Pure functions on tensors and models (no files). `compute` is what the loop logs at every
evaluation, as `validator_<name>`; HIGHER_IS_BETTER and `better` say which way each one points.
keeping_flag and rare_class_flag say when a run's generator or classifier looks broken.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import to_float
from .helpers import eval_mode, predictor, uniform_noise
from .metrics import eval_batch

# Which way each validator points. Regression runs get dev and kid only: entropy, im, snd and
# label_keeping need class probabilities.
HIGHER_IS_BETTER = {
    "entropy": False,
    "im": True,
    "snd": True,
    "dev": False,
    "kid": False,
    "label_keeping": True,
    "im_kept": True,
}
SUBSET = 1000  # images per fixed subset (target, held-out source, source train): the default
SEED = 0  # one subset and one noise for every run, whatever its --seed, so runs compare
SND_TEMPERATURE = 0.05  # Saito et al. 2021
DEV_L2 = 0.01  # ridge penalty of DEV's logistic domain classifier (standardized features)
# DEV's importance weights are clipped to [1/M, M], then scaled to mean 1: when the domains are
# nearly separable in the features the raw ratios span many orders of magnitude, and one image
# decides the risk (a run logged -1.5e15 before this).
DEV_MAX_WEIGHT = 20.0


KEEPING_FLOOR = 0.9  # label_keeping below this is flagged
KEEPING_DROP = 0.05  # ... and so is a fall of more than 5 points from the run's best so far


def keeping_flag(value: float, best: float) -> str:
    """ "" or why a label_keeping `value` is flagged, given the best the run had reached."""
    if value < KEEPING_FLOOR:
        return f"label keeping {value:.3f} < {KEEPING_FLOOR}"
    if value < best - KEEPING_DROP:
        return f"label keeping fell to {value:.3f} from {best:.3f}"
    return ""


# A class that T gives to under a quarter of its even share (1/K) of the unlabeled target images
# is flagged: self-training that stopped predicting a class only confirms that (USPS 9s, read as
# 4s and 7s). A warning only: a target may lack a class.
RARE_SHARE = 0.25


def class_counts(logits: torch.Tensor) -> list[int]:
    """How many of the images (logits (N, K)) T predicts each class for."""
    return torch.bincount(logits.argmax(1), minlength=logits.size(1)).tolist()


def rarest_class(logits: torch.Tensor) -> tuple[int, float]:
    """(the class T predicts least often over logits (N, K), K times the share of the images
    it is predicted for): share 1 when every class is predicted equally often, 0 when that
    class is never predicted."""
    counts = class_counts(logits)
    k = counts.index(min(counts))
    return k, counts[k] * logits.size(1) / len(logits)


def rare_class_flag(k: int, share: float, classes=None) -> str:
    """ "" or why class k's share (rarest_class) is flagged; `classes`: names, or None."""
    if share >= RARE_SHARE:
        return ""
    name = classes[k] if classes and k < len(classes) else str(k)
    return f"class {name} is predicted for {share:.2f} of its even share of the target images"


# A class whose predicted share of the target subset falls below (1 - SHRINK) of its share at the
# reference evaluation (the run's best label-free --select-by score so far), two evaluations in a
# row, is flagged: self-training can drift a class into its neighbours for good (MNIST -> USPS,
# 2-hour budget: after 98.5% at 15 minutes the teacher read ever more 9s as 4s and 7s, 92 -> 71
# images of the subset, accuracy 96.3% at 49 minutes), which no validator showed. Over the fixed
# subset a share moves only as images change class; 20 images is the least a class needs at the
# reference to be judged, so one or two flips of a small class are not a fall.
SHRINK = 0.2
SHRINK_MIN_IMAGES = 20


def shrinking_class(counts: list[int], reference: list[int]) -> tuple[int, float]:
    """(the class whose count fell most, relative to `reference`, the counts of an earlier
    evaluation on the same images, and its count / reference count), over the classes with at
    least SHRINK_MIN_IMAGES at the reference; (-1, 1.0) when none has."""
    ratios = [
        (c / r, k) for k, (c, r) in enumerate(zip(counts, reference)) if r >= SHRINK_MIN_IMAGES
    ]
    if not ratios:
        return -1, 1.0
    ratio, k = min(ratios)
    return k, ratio


def shrinking_class_flag(k: int, ratio: float, reference_step: int, classes=None) -> str:
    """ "" or why class k, predicted for `ratio` of the target images it got at step
    `reference_step`, is flagged (shrinking_class)."""
    if k < 0 or ratio >= 1 - SHRINK:
        return ""
    name = classes[k] if classes and k < len(classes) else str(k)
    return (
        f"class {name} is predicted for {ratio:.2f} of the target images it got at step "
        f"{reference_step} (the best label-free score so far)"
    )


def better(name: str, a: float, b: float) -> bool:
    """Is validator `name`'s value a strictly better than b?"""
    return a > b if HIGHER_IS_BETTER[name] else a < b


@dataclass
class ValidationData:
    """The fixed images the validators see, chosen once per run (seeded by SEED, not --seed).

    x_tgt: uint8 (N, C, S, S) unlabeled target training images; x_src, y_src: held-out labeled
    source images (the source test split: never trained on); x_src_train: source training
    images, which DEV's domain classifier learns from."""

    x_tgt: torch.Tensor
    x_src: torch.Tensor
    y_src: torch.Tensor
    x_src_train: torch.Tensor


def _pick(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=g)[: min(n, size)].sort().values


def build_data(data, size: int = SUBSET) -> ValidationData | None:
    """Fixed subsets of `size` images of a RunData-like object (source_train, source_test,
    target_train); None when size is 0 or there are no target images (the cgan). Without a
    source test split, the held-out source images are source training images DEV does not fit."""
    train, held = data.source_train, data.source_test
    if size == 0 or data.target_train is None or len(data.target_train) < 2 or len(train) < 4:
        return None  # kid and snd need two images a side, DEV two held-out ones
    g = torch.Generator().manual_seed(SEED)
    x_tgt = data.target_train.images[_pick(len(data.target_train), size, g)]
    order = torch.randperm(len(train), generator=g)
    fit = order[: min(size, len(train) // 2)].sort().values
    if held is None or held.labels is None or len(held) < 2:
        held, idx = train, order[len(fit) :][:size].sort().values
    else:
        idx = _pick(len(held), size, g)
    return ValidationData(x_tgt, held.images[idx], held.labels[idx], train.images[fit])


def entropy(logits: torch.Tensor) -> float:
    """Mean entropy (nats) of the per-image predictions, logits (N, K). Lower is better (confident
    target predictions); needs class logits only. A collapsed classifier also scores well:
    read it with im."""
    return _entropies(logits).mean().item()


def _entropies(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.double(), dim=1)
    return -(logp.exp() * logp).sum(1)


def im(logits: torch.Tensor) -> float:
    """Information maximisation: entropy of the mean prediction minus the mean per-image entropy,
    logits (N, K) -> in [0, log K]. Higher is better: confident predictions (low per-image
    entropy) spread over the classes (high entropy of their mean). Needs class logits only."""
    p_mean = F.softmax(logits.double(), dim=1).mean(0)
    h_mean = -(p_mean * p_mean.clamp_min(1e-300).log()).sum()
    return (h_mean - _entropies(logits).mean()).item()


def snd(logits: torch.Tensor, temperature: float = SND_TEMPERATURE) -> float:
    """Soft neighbourhood density (Saito et al. ICCV 2021), logits (N, K), N >= 2.

    The softmax predictions, L2-normalized; their cosine similarities to the other N - 1 images
    (self left out), divided by the temperature and softmaxed into a neighbour distribution
    per image; the mean entropy of those distributions. Higher is better: target images sit in
    dense neighbourhoods of similar predictions. Needs class logits only."""
    f = F.normalize(F.softmax(logits.double(), dim=1), dim=1)
    n = f.size(0)
    sim = (f @ f.T)[~torch.eye(n, dtype=torch.bool)].view(n, n - 1)
    logp = F.log_softmax(sim / temperature, dim=1)
    return -(logp.exp() * logp).sum(1).mean().item()


def dev_risk(losses: torch.Tensor, weights: torch.Tensor) -> float:
    """Deep embedded validation risk (You et al. ICML 2019) from per-image losses (N,) of held-out
    source images and their importance weights (N,), p_target(x) / p_source(x).

    The weighted losses' mean, with the control variate: eta = -Cov(w l, w) / Var(w) and
    risk = mean(w l) + eta mean(w) - eta (sample covariances, N - 1). Lower is better."""
    losses, weights = losses.double(), weights.double()
    weighted = weights * losses
    var = weights.var()
    eta = 0.0
    if var > 0:
        eta = -torch.cov(torch.stack([weighted, weights]))[0, 1] / var
    return (weighted.mean() + eta * weights.mean() - eta).item()


def tame(weights: torch.Tensor, max_weight: float = DEV_MAX_WEIGHT) -> torch.Tensor:
    """Importance weights clipped to [1/max_weight, max_weight] and scaled to mean 1."""
    clipped = weights.double().clamp(1.0 / max_weight, max_weight)
    return (clipped / clipped.mean()).float()


def density_ratio(
    f_src: torch.Tensor, f_tgt: torch.Tensor, f_eval: torch.Tensor, l2: float = DEV_L2
) -> torch.Tensor:
    """Importance weights p_target(f) / p_source(f) at f_eval (M, D), from a logistic domain
    classifier fit on source features f_src (Ns, D) against target features f_tgt (Nt, D):
    (Ns / Nt) * P(target | f) / P(source | f) -> (M,).

    The classifier: standardized features, an L2 penalty `l2` on the weights (not the bias), 25
    Newton steps in float64; deterministic, and no autograd, so it runs under inference_mode."""
    x = torch.cat([f_src, f_tgt]).double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)

    def design(f):
        return torch.cat([(f.double() - mean) / std, torch.ones(len(f), 1, dtype=x.dtype)], 1)

    a = design(x)
    y = torch.cat([torch.zeros(len(f_src)), torch.ones(len(f_tgt))]).double()
    ridge = torch.full((a.size(1),), l2, dtype=x.dtype)
    ridge[-1] = 0.0
    w = torch.zeros(a.size(1), dtype=x.dtype)
    for _ in range(25):
        p = torch.sigmoid(a @ w)
        grad = a.T @ (p - y) / len(y) + ridge * w
        hess = (a.T * (p * (1 - p))) @ a / len(y) + torch.diag(ridge)
        w = w - torch.linalg.solve(hess + 1e-9 * torch.eye(len(w), dtype=x.dtype), grad)
    log_odds = design(f_eval) @ w
    return (log_odds.exp() * len(f_src) / len(f_tgt)).float()


def kid(f_x: torch.Tensor, f_y: torch.Tensor) -> float:
    """Kernel inception distance (Binkowski et al. 2018) between feature sets f_x (M, D) and
    f_y (N, D), M, N >= 2: the unbiased MMD^2 with kernel k(a, b) = (a.b / D + 1)^3. Zero in
    expectation for samples of one distribution (so it can be slightly negative). Lower is
    better."""
    f_x, f_y = f_x.double(), f_y.double()
    d, m, n = f_x.size(1), f_x.size(0), f_y.size(0)
    k_xx = (f_x @ f_x.T / d + 1) ** 3
    k_yy = (f_y @ f_y.T / d + 1) ** 3
    k_xy = (f_x @ f_y.T / d + 1) ** 3
    return (
        (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
        + (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
        - 2 * k_xy.mean()
    ).item()


def label_keeping(src_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    """Fraction of source images whose predicted class T keeps on their adapted version:
    argmax T(x_src) == argmax T(G(x_src, z)), logits (N, K) each. Higher is better; a drop
    means G stopped keeping labels. Needs class logits and a generator."""
    return (src_logits.argmax(1) == fake_logits.argmax(1)).double().mean().item()


def _outputs(classifier: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The task network's logits (N, K) and the features its last linear layer reads (the
    tower's 100-unit hidden layer, a ResNet's pooled features): the representation DEV's
    domain classifier and KID compare."""
    hidden, head = classifier.features(x), classifier.head
    if isinstance(head, nn.Sequential):
        hidden, head = head[:-1](hidden), head[-1]
    return head(hidden), hidden


def _embed(classifier, images, device, generator=None, z=None):
    """(logits, features) on the CPU for uint8 images, in batches; through G first if given."""
    logits, feats = [], []
    batch = eval_batch(device)
    for i, part in enumerate(images.split(batch)):
        x = to_float(part.to(device))
        if generator is not None:
            x = generator(x, z[i * batch : i * batch + len(part)].to(device))
        out, hidden = _outputs(classifier, x)
        logits.append(out.float().cpu())
        feats.append(hidden.float().cpu())
    return torch.cat(logits), torch.cat(feats)


def per_image_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The task loss of each image (N,): cross-entropy for class labels, the mean squared error
    over the K outputs for regression targets (N, K)."""
    if targets.dtype.is_floating_point:
        return (outputs.double() - targets.double()).pow(2).mean(1)
    return F.cross_entropy(outputs.double(), targets, reduction="none")


def compute(models: nn.ModuleDict, method_name: str, data: ValidationData | None) -> dict:
    """Every validator that applies to the run -> {"validator_<name>": float}.

    Methods with a task classifier get dev (and, for class labels, entropy, im, snd); PixelDA
    also gets kid and label_keeping for its generator, on the first half of the held-out
    source images (G is the slow part). kid compares those images, adapted, with the target
    subset in the features of the run's own classifier, which without self-training never saw
    a real target image: it measures the shift that classifier is left with (features scaled
    by the target features' root mean square, so checkpoints compare). Nothing for the cgan
    (no classifier; its judge scores it). Classification runs also get target_rarest_class
    and target_rarest_share (rarest_class on the target subset), and target_class_counts
    (class_counts there; the loop compares them with an earlier evaluation's and does not log
    them): diagnostics, not validators. Models run in eval mode under inference_mode, their
    train/eval modes restored after; the run's random state is left untouched."""
    if data is None or "classifier" not in models:
        return {}
    classifier = predictor(models)
    generator = models["generator"] if method_name == "pixelda" else None
    used = [m for m in (classifier, generator) if m is not None]
    device = next(classifier.parameters()).device
    regression = data.y_src.dtype.is_floating_point
    with torch.inference_mode(), eval_mode(*used):
        tgt_logits, tgt_f = _embed(classifier, data.x_tgt, device)
        src_logits, src_f = _embed(classifier, data.x_src, device)
        train_f = _embed(classifier, data.x_src_train, device)[1]
        weights = tame(density_ratio(train_f, tgt_f, src_f))
        out = {"dev": dev_risk(per_image_loss(src_logits, data.y_src), weights)}
        if not regression:
            out.update(entropy=entropy(tgt_logits), im=im(tgt_logits), snd=snd(tgt_logits))
        if generator is not None:
            g = torch.Generator().manual_seed(SEED)
            x_src = data.x_src[: max(2, len(data.x_src) // 2)]
            z = uniform_noise((len(x_src), generator.latent_dim), generator=g)
            fake_logits, fake_f = _embed(classifier, x_src, device, generator, z)
            # One scale for every checkpoint: target features get a mean square of 1 per
            # dimension, as T's feature scale grows with training.
            scale = tgt_f.pow(2).mean().sqrt().clamp_min(1e-12)
            out["kid"] = kid(fake_f / scale, tgt_f / scale)
            if not regression:
                out["label_keeping"] = label_keeping(src_logits[: len(x_src)], fake_logits)
    if regression:
        return {f"validator_{k}": v for k, v in out.items()}
    out["im_kept"] = im_kept(out["im"], out.get("label_keeping"))
    rare, share = rarest_class(tgt_logits)
    return {f"validator_{k}": v for k, v in out.items()} | {
        "target_rarest_class": rare,
        "target_rarest_share": share,
        "target_class_counts": class_counts(tgt_logits),
    }


def im_kept(im_value: float, keeping: float | None) -> float:
    """im times the generator's label-keeping rate (im alone without a generator); higher is
    better. im rewards confident, diverse target predictions, which a T that learned a generator's
    changed digits also gives; the label-keeping factor takes those checkpoints down. The
    default --select-by: it picked within 0.3 point of the best checkpoint per run on both pairs
    in docs/selection.md's study, where im alone lost 1.3 points on MNIST -> USPS."""
    return im_value * (1.0 if keeping is None else keeping)
