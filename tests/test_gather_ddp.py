"""Cross-rank losses on 2 real CPU processes (gloo) equal the one-process losses on the whole batch.

Gradient relation checked: each rank's loss is the mean over its own B queries; the one-process loss
L on the 2B documents is the mean of the two ranks' losses. ``gather_with_grad``'s backward sums the
gradients that every rank's loss sends to a rank's rows, so the gradient on rank r's inputs is
``d(loss_0 + loss_1)/dx_r = 2 * dL/dx_r`` (W * dL/dx_r in general), and DDP's average of the parameter
gradients over the W ranks is exactly ``dL/dtheta``.
"""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from docalign.distributed import gather_no_grad, gather_with_grad
from docalign.losses import ditc_loss, glitc_loss, info_nce, supcon_inter, supcon_intra, supcon_intra_views
from docalign.models.momentum import FeatureQueue

WORLD, BATCH, DIM, TEMP = 2, 3, 8, 0.1


def make_inputs():
    """The whole global batch, identical on every process (seeded)."""
    g = torch.Generator().manual_seed(0)
    n = WORLD * BATCH
    return {
        "raw_image": torch.randn(n, 5, generator=g, dtype=torch.float64),
        "raw_text": torch.randn(n, 5, generator=g, dtype=torch.float64),
        "weight": torch.randn(DIM, 5, generator=g, dtype=torch.float64),
        # class 2 has one document: it has no positive, so the ranks hold 3 and 2 supcon anchors
        "labels": torch.tensor([0, 1, 0, 1, 1, 2]),
        "image_m": F.normalize(torch.randn(n, DIM, generator=g, dtype=torch.float64), dim=-1),
        "text_m": F.normalize(torch.randn(n, DIM, generator=g, dtype=torch.float64), dim=-1),
        "queue": F.normalize(torch.randn(4, DIM, generator=g, dtype=torch.float64), dim=-1),
        "locals_m": F.normalize(torch.randn(n, 7, DIM, generator=g, dtype=torch.float64), dim=-1),
        # rank 0's documents have at most 4 tokens, rank 1's up to 7: their batches pad differently;
        # document 4 has none, so rank 1 holds fewer GLITC text queries than rank 0
        "lengths": torch.tensor([4, 2, 3, 7, 0, 6]),
        # documents of the global batch (windows 2 and 4 of one document, on different ranks) and of the queue
        "doc_ids": torch.tensor([0, 1, 2, 3, 2, 5]),
        "queue_ids": torch.tensor([3, -1, 0, 9]),
    }


def all_losses(x, rows, weight, lengths_pad):
    """Every cross-rank loss on the documents ``rows``, features through a shared linear layer."""
    image = F.normalize(x["raw_image"][rows] @ weight.T, dim=-1)
    text = F.normalize(x["raw_text"][rows] @ weight.T, dim=-1)
    labels = x["labels"][rows]
    own = torch.tensor(rows)  # each query's positive among the gathered keys
    clip = (info_nce(image, gather_with_grad(text), own, TEMP) + info_nce(text, gather_with_grad(image), own, TEMP)) / 2
    text_locals = x["locals_m"][rows][:, :lengths_pad]
    mask = torch.arange(lengths_pad)[None, :] < x["lengths"][rows][:, None]
    return {
        "clip": clip,
        **supcon_inter(image, text, labels, TEMP),
        **supcon_intra(image, text, labels, TEMP),
        # VLCDoC's two-view intra term: each rank concatenates its own two views, so the gathered contrast set is
        # ordered differently from the one-process one; the loss must not depend on that order
        "supcon_intra_views": supcon_intra_views(image, F.normalize(image + 0.5 * text, dim=-1), text, labels, TEMP)[
            "loss_intra"
        ],
        **ditc_loss(image, text, x["image_m"][rows], x["text_m"][rows], x["queue"], x["queue"], TEMP),
        "ditc_same_document_masked": ditc_loss(
            image,
            text,
            x["image_m"][rows],
            x["text_m"][rows],
            x["queue"],
            x["queue"],
            TEMP,
            x["doc_ids"][rows],
            x["queue_ids"],
            x["queue_ids"],
        )["loss_ditc"],
        **glitc_loss(image, x["locals_m"][rows][:, :3], text, text_locals, mask, TEMP),
    }


def worker(rank, port):
    torch.set_num_threads(1)
    x = make_inputs()
    # The reference, before any process group exists: every gather is the identity.
    ref_weight = x["weight"].clone().requires_grad_()
    reference = all_losses(x, list(range(WORLD * BATCH)), ref_weight, 7)
    ref_grads = {k: torch.autograd.grad(v, ref_weight, retain_graph=True)[0] for k, v in reference.items()}

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        rows = list(range(rank * BATCH, (rank + 1) * BATCH))
        lengths_pad = int(x["lengths"][rows].max())  # each rank pads to its own longest document
        weight = x["weight"].clone().requires_grad_()
        losses = all_losses(x, rows, weight, lengths_pad)
        for name, loss in losses.items():
            grad = torch.autograd.grad(loss, weight, retain_graph=True)[0]
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            dist.all_reduce(grad)  # what DDP does, then divides by the world size
            torch.testing.assert_close(mean_loss / WORLD, reference[name].detach(), msg=name)
            torch.testing.assert_close(grad / WORLD, ref_grads[name], msg=name)

        # input-level relation: rank r's rows receive W times the one-process gradient
        features = F.normalize(x["raw_image"], dim=-1).requires_grad_()
        full = info_nce(features, features, torch.arange(WORLD * BATCH), TEMP)
        (full_grad,) = torch.autograd.grad(full, features)
        local = features[rows].detach().requires_grad_()
        loss = info_nce(local, gather_with_grad(local), torch.tensor(rows), TEMP)
        (local_grad,) = torch.autograd.grad(loss, local)
        torch.testing.assert_close(local_grad, WORLD * full_grad[rows])
        assert not torch.allclose(local_grad, full_grad[rows])

        # no-grad gather of labels keeps rank order; queues stay identical on every rank
        assert gather_no_grad(x["labels"][rows]).tolist() == x["labels"].tolist()
        queue = FeatureQueue(size=5, dim=DIM)
        queue.enqueue(x["image_m"][rows].float(), x["doc_ids"][rows])
        expected = x["image_m"].float()
        torch.testing.assert_close(queue.features, torch.cat([expected[5:], expected[1:5]]))
        assert queue.ids.tolist() == [5, 1, 2, 3, 2]  # document ids gathered in the same order
        assert int(queue.pointer) == 1
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ddp
def test_two_process_losses_and_gradients_equal_the_one_process_ones():
    # A failed assertion in either worker makes spawn raise, with that worker's traceback.
    mp.spawn(worker, args=(free_port(),), nprocs=WORLD, join=True)


def test_one_process_group_adds_no_world_dimension():
    """With a real process group of world size 1 the gathers are the identity (Lightning's trap)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        x = torch.randn(3, 4, requires_grad=True)
        out = gather_with_grad(x)
        assert out.shape == (3, 4)
        out.sum().backward()
        torch.testing.assert_close(x.grad, torch.ones(3, 4))
        assert gather_no_grad(x).shape == (3, 4) and not gather_no_grad(x).requires_grad
    finally:
        dist.destroy_process_group()
