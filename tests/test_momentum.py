"""EMA momentum copies and the feature queue."""

import pytest
import torch
from torch import nn

from docalign.losses import ditc_loss
from docalign.models.momentum import FeatureQueue, ema_update, make_momentum_copy


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_momentum_copy_is_frozen_independent_and_gets_no_gradients():
    online = small_net()
    twin = make_momentum_copy(online)
    assert all(not p.requires_grad for p in twin.parameters())
    assert all(p.requires_grad for p in online.parameters())
    for a, b in zip(online.parameters(), twin.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    x = torch.randn(5, 4)
    (online(x).sum() + twin(x).sum()).backward()
    assert all(p.grad is not None for p in online.parameters())
    assert all(p.grad is None for p in twin.parameters())


def test_ema_m0_copies_m1_freezes_and_buffers_follow():
    online, twin = small_net(0), make_momentum_copy(small_net(1))
    online.train()(torch.randn(8, 4) * 3 + 1)  # move the BatchNorm running statistics
    before = state(twin)
    ema_update(online, twin, 1.0)
    for name, value in twin.named_parameters():
        assert torch.equal(value, before[name]), name
    ema_update(online, twin, 0.0)
    for (name, value), target in zip(twin.state_dict().items(), online.state_dict().values()):
        assert torch.equal(value, target), name
    assert all(not p.requires_grad for p in twin.parameters())


def test_ema_blends_with_the_given_momentum():
    online, twin = small_net(0), make_momentum_copy(small_net(1))
    old = state(twin)
    ema_update(online, twin, 0.9)
    for name, value in twin.named_parameters():
        torch.testing.assert_close(value, 0.9 * old[name] + 0.1 * online.state_dict()[name])


def test_ema_runs_under_no_grad_and_rejects_bad_input():
    online, twin = small_net(0), make_momentum_copy(small_net(1))
    with torch.no_grad():
        ema_update(online, twin, 0.5)
    with pytest.raises(ValueError):
        ema_update(online, twin, 1.5)
    with pytest.raises(ValueError):
        ema_update(online, make_momentum_copy(nn.Sequential(nn.Linear(4, 6))), 0.5)


def test_queue_fills_then_wraps_around():
    queue = FeatureQueue(size=5, dim=2)
    assert queue.items().shape == (0, 2)
    rows = torch.arange(16, dtype=torch.float32).reshape(8, 2)
    queue.enqueue(rows[:3])
    torch.testing.assert_close(queue.items(), rows[:3])
    assert int(queue.pointer) == 3
    queue.enqueue(rows[3:6])  # rows 3, 4 at the end; row 5 wraps to 0
    assert int(queue.pointer) == 1 and int(queue.filled) == 5
    torch.testing.assert_close(queue.items(), torch.stack([rows[5], rows[1], rows[2], rows[3], rows[4]]))
    queue.enqueue(rows[6:8])
    assert int(queue.pointer) == 3
    torch.testing.assert_close(queue.items(), torch.stack([rows[5], rows[6], rows[7], rows[3], rows[4]]))


def test_queue_write_larger_than_the_queue_keeps_the_last_rows():
    queue = FeatureQueue(size=4, dim=1)
    queue.enqueue(torch.tensor([[9.0]]))
    queue.enqueue(torch.arange(7, dtype=torch.float32)[:, None])  # 1 + 7 rows written: pointer 8 % 4 = 0
    assert int(queue.pointer) == 0 and int(queue.filled) == 4
    assert sorted(queue.items().flatten().tolist()) == [3.0, 4.0, 5.0, 6.0]
    # the same rows as writing the 7 one by one from row 1: 3 -> row 0, 4 -> 1, 5 -> 2, 6 -> 3
    torch.testing.assert_close(queue.features.flatten(), torch.tensor([3.0, 4.0, 5.0, 6.0]))


def test_queue_state_is_saved_and_items_survive_a_later_enqueue():
    queue = FeatureQueue(size=6, dim=3)
    queue.enqueue(torch.randn(4, 3))
    restored = FeatureQueue(size=6, dim=3)
    restored.load_state_dict(queue.state_dict())
    assert set(queue.state_dict()) == {"features", "ids", "pointer", "filled"}
    torch.testing.assert_close(restored.items(), queue.items())
    assert int(restored.pointer) == 4
    # a loss built on items() still backpropagates after the queue was overwritten in place
    image = torch.nn.functional.normalize(torch.randn(2, 3), dim=-1).requires_grad_()
    loss = ditc_loss(image, image, image.detach(), image.detach(), queue.items(), queue.items(), 0.1)["loss_ditc"]
    kept = queue.items()
    queue.enqueue(torch.randn(4, 3))
    loss.backward()
    assert image.grad is not None and not torch.equal(kept, queue.items())


def test_queue_keeps_document_ids_beside_its_rows_and_loads_checkpoints_without_them():
    queue = FeatureQueue(size=4, dim=2)
    queue.enqueue(torch.randn(3, 2), torch.tensor([10, 11, 12]))
    queue.enqueue(torch.randn(2, 2))  # no ids given: unknown (-1), rows 3 and 0
    assert queue.item_ids().tolist() == [-1, 11, 12, -1]
    queue.enqueue(torch.randn(1, 2), torch.tensor([13]))  # row 1
    assert queue.item_ids().tolist() == [-1, 13, 12, -1]
    assert queue.item_ids().shape[0] == queue.items().shape[0]
    old = {k: v for k, v in queue.state_dict().items() if k != "ids"}  # a checkpoint from before ids
    restored = FeatureQueue(size=4, dim=2)
    restored.load_state_dict(old)
    torch.testing.assert_close(restored.items(), queue.items())
    assert restored.item_ids().tolist() == [-1, -1, -1, -1]


def test_queue_rejects_an_empty_size():
    with pytest.raises(ValueError):
        FeatureQueue(size=0, dim=3)
