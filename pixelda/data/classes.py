"""Class names: the order labeled folders and CSV manifests number them in, and the mapping of a
dataset's classes onto a model's by name, so a folder holding only some classes (or holding them
in another order) is scored against the right outputs."""

import torch

from ..errors import UserError
from .common import ImageSet


def name_order(name: str) -> tuple:
    """Sort key: numeric names by their value ("2" before "10"), then the others as text."""
    text = name.strip()
    if text.isdigit():
        return (0, int(text), name)
    return (1, 0, name)


def sorted_names(names) -> list[str]:
    return sorted(names, key=name_order)


def _shown(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def align(data: ImageSet | None, classes: list[str] | None, where: str) -> ImageSet | None:
    """`data` with its labels renumbered to index `classes` by name (the model's or the run's
    source's); a class name `classes` lacks is a UserError naming it. Regression targets,
    unlabeled data and data without class names come back as they are."""
    if data is None or data.labels is None or data.labels.dtype.is_floating_point:
        return data
    if not data.classes or not classes or list(data.classes) == list(classes):
        return data
    index = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in data.classes if name not in index]
    if unknown:
        raise UserError(
            f"{where}: class {unknown[0]!r} is not one of the model's classes "
            f"({_shown(list(classes))}); class folders must be named as the source's"
        )
    mapping = torch.tensor([index[name] for name in data.classes], dtype=torch.int64)
    return ImageSet(
        data.images,
        mapping[data.labels],
        name=data.name,
        classes=list(classes),
        masks=data.masks,
        streamed=data.streamed,
    )


def counts(data: ImageSet) -> dict[str, int]:
    """Images per class name, in class order, classes without images left out."""
    if data.labels is None or data.labels.dtype.is_floating_point or not data.classes:
        return {}
    per_class = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
    return {name: n for name, n in zip(data.classes, per_class) if n}
