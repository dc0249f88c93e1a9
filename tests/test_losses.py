"""Alignment losses against hand-computed values and naive loops, forward and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from docalign.losses import (
    Temperature,
    ditc_loss,
    glitc_loss,
    imc_loss,
    info_nce,
    patch_grid_side,
    patch_text_features,
    pita_loss,
    pool_patch_regions,
    sup_contrastive,
    supcon_inter,
    supcon_intra,
    token_patch_index,
)

TEMP = 0.1


def unit(*shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)
    return x.requires_grad_(requires_grad)


def assert_same_grads(a, b, inputs):
    grads_a = torch.autograd.grad(a, inputs, retain_graph=True)
    for ga, gb in zip(grads_a, torch.autograd.grad(b, inputs, retain_graph=True)):
        torch.testing.assert_close(ga, gb)


# ---- naive references: one query, one positive, a list of negatives -----------------------------


def l_cl(q, positive, negatives, t):
    """-log exp(q.k+/t) / sum_{k in {k+} U N} exp(q.k/t), written out term by term."""
    num = torch.exp(q @ positive / t)
    den = num + sum((torch.exp(q @ n / t) for n in negatives), torch.zeros((), dtype=q.dtype))
    return -torch.log(num / den)


def naive_queue_contrast(query, keys_m, queue, t):
    losses = []
    for i in range(query.shape[0]):
        negatives = [keys_m[j] for j in range(keys_m.shape[0]) if j != i] + list(queue)
        losses.append(l_cl(query[i], keys_m[i], negatives, t))
    return torch.stack(losses).mean()


def naive_queue_contrast_masked(query, keys_m, queue, t, doc_ids, queue_ids):
    """As above, leaving out every key of the query's own document except its positive."""
    losses = []
    for i in range(query.shape[0]):
        negatives = [keys_m[j] for j in range(keys_m.shape[0]) if j != i and doc_ids[j] != doc_ids[i]]
        negatives += [queue[k] for k in range(queue.shape[0]) if queue_ids[k] != doc_ids[i]]
        losses.append(l_cl(query[i], keys_m[i], negatives, t))
    return torch.stack(losses).mean()


def naive_global_local(cls, locals_m, mask, t):
    per_doc = []
    for d in range(cls.shape[0]):
        mine = [locals_m[d, j] for j in range(locals_m.shape[1]) if mask[d, j]]
        others = [locals_m[e, j] for e in range(cls.shape[0]) if e != d for j in range(locals_m.shape[1]) if mask[e, j]]
        per_doc.append(torch.stack([l_cl(cls[d], k, others, t) for k in mine]).mean())
    return torch.stack(per_doc).mean()


# ---- InfoNCE core -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch,scale", [(2, 1.0), (4, 10.0), (8, 14.3)])
def test_symmetric_info_nce_of_orthonormal_pairs_matches_closed_form(batch, scale):
    features = torch.eye(batch, 16, dtype=torch.float64)
    target = torch.arange(batch)
    sym = (info_nce(features, features, target, 1 / scale) + info_nce(features, features, target, 1 / scale)) / 2
    assert sym.item() == pytest.approx(math.log(1 + (batch - 1) * math.exp(-scale)), rel=1e-9)


def test_info_nce_matches_a_naive_loop_forward_and_gradients():
    q, k = unit(5, 8, seed=1, requires_grad=True), unit(9, 8, seed=2, requires_grad=True)
    temp = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([3, 0, 8, 3, 5])
    ours = info_nce(q, k, pos, temp)
    naive = torch.stack([l_cl(q[i], k[pos[i]], [k[j] for j in range(9) if j != pos[i]], temp) for i in range(5)]).mean()
    torch.testing.assert_close(ours.double(), naive)
    assert_same_grads(ours.double(), naive, (q, k, temp))
    # the index form equals PyTorch's cross-entropy over all keys
    torch.testing.assert_close(ours.double(), F.cross_entropy(q @ k.T / temp, pos))


def test_multi_positive_info_nce_scores_each_positive_against_the_negatives_only():
    q, k = unit(3, 6, seed=3, requires_grad=True), unit(7, 6, seed=4, requires_grad=True)
    pos = torch.zeros(3, 7, dtype=torch.bool)
    pos[0, [1, 2]] = True
    pos[1, [0, 4, 6]] = True  # query 2 has none: left out of the mean
    key_mask = torch.tensor([True, True, True, True, True, False, True])
    ours = info_nce(q, k, pos, TEMP, key_mask=key_mask)
    naive = []
    for i in range(2):
        negatives = [k[j] for j in range(7) if not pos[i, j] and key_mask[j]]
        naive.append(torch.stack([l_cl(q[i], k[j], negatives, TEMP) for j in range(7) if pos[i, j]]).mean())
    naive = torch.stack(naive).mean()
    torch.testing.assert_close(ours.double(), naive)
    assert_same_grads(ours.double(), naive, (q, k))


def test_masked_keys_change_nothing_and_no_positive_gives_zero():
    q, k = unit(4, 6, seed=5, requires_grad=True), unit(6, 6, seed=6)
    pos = torch.tensor([0, 1, 2, 3])
    extra = torch.cat([k, 100 * unit(3, 6, seed=7)])  # huge logits if they leaked in
    mask = torch.tensor([True] * 6 + [False] * 3)
    a, b = info_nce(q, k, pos, TEMP), info_nce(q, extra, pos, TEMP, key_mask=mask)
    torch.testing.assert_close(a, b)
    assert_same_grads(a, b, (q,))
    none = info_nce(q, k, torch.zeros(4, 6, dtype=torch.bool), TEMP)
    assert none.item() == 0.0 and none.requires_grad


def test_temperature_is_clamped_learnable_and_projected():
    temp = Temperature()
    assert temp().item() == pytest.approx(0.07)
    q, k = unit(4, 8, seed=8), unit(4, 8, seed=9)
    info_nce(q.float(), k.float(), torch.arange(4), temp()).backward()
    assert temp.value.grad is not None and temp.value.grad.abs() > 0
    with torch.no_grad():
        temp.value.fill_(3.0)
    assert temp().item() == pytest.approx(0.5)
    temp.project_()
    assert temp.value.item() == pytest.approx(0.5)
    with torch.no_grad():
        temp.value.fill_(-1.0)
    assert temp().item() == pytest.approx(0.001)
    with pytest.raises(ValueError):
        Temperature(init=0.7)


# ---- DITC / IMC ---------------------------------------------------------------------------------


def test_ditc_of_identical_orthonormal_features_matches_closed_form():
    batch, queue_len, scale = 4, 3, 10.0
    basis = torch.eye(batch + queue_len, 16, dtype=torch.float64)
    docs, queue = basis[:batch], basis[batch:]  # queue rows orthogonal to every document
    out = ditc_loss(docs, docs, docs, docs, queue, queue, 1 / scale)
    assert set(out) == {"loss_ditc"}
    expected = math.log(1 + (batch - 1 + queue_len) * math.exp(-scale))
    assert out["loss_ditc"].item() == pytest.approx(expected, rel=1e-9)


def test_ditc_and_imc_match_naive_loops_forward_and_gradients():
    image, text = unit(4, 8, seed=10, requires_grad=True), unit(4, 8, seed=11, requires_grad=True)
    image_m, text_m, view_m = unit(4, 8, seed=12), unit(4, 8, seed=13), unit(4, 8, seed=14)
    image_q, text_q = unit(6, 8, seed=15), unit(5, 8, seed=16)
    temp = torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
    ditc = ditc_loss(image, text, image_m, text_m, image_q, text_q, temp)["loss_ditc"]
    naive = (naive_queue_contrast(image, text_m, text_q, temp) + naive_queue_contrast(text, image_m, image_q, temp)) / 2
    torch.testing.assert_close(ditc.double(), naive)
    assert_same_grads(ditc.double(), naive, (image, text, temp))

    imc = imc_loss(image, view_m, image_q, text, text_m, text_q, temp)["loss_imc"]
    naive = (naive_queue_contrast(image, view_m, image_q, temp) + naive_queue_contrast(text, text_m, text_q, temp)) / 2
    torch.testing.assert_close(imc.double(), naive)
    assert_same_grads(imc.double(), naive, (image, text, temp))
    # without a queue only the batch's momentum keys are negatives
    no_queue = ditc_loss(image, text, image_m, text_m, None, None, temp)["loss_ditc"]
    empty = torch.empty(0, 8, dtype=torch.float64)
    torch.testing.assert_close(
        no_queue.double(),
        (naive_queue_contrast(image, text_m, empty, temp) + naive_queue_contrast(text, image_m, empty, temp)) / 2,
    )


def test_same_document_keys_are_left_out_of_the_negatives_when_ids_are_given():
    """Closed form: the queue holds an exact older copy of each document (what a queue holds once an epoch has
    passed) plus orthogonal rows. Unmasked, each copy is a negative as similar as the positive; masked, the loss is
    that of the orthogonal keys only."""
    batch, others, scale = 3, 2, 10.0
    basis = torch.eye(batch + others, 8, dtype=torch.float64)
    docs, orthogonal = basis[:batch], basis[batch:]
    queue = torch.cat([docs, orthogonal])  # rows 0-2: older copies of documents 7, 8, 9
    doc_ids, queue_ids = torch.tensor([7, 8, 9]), torch.tensor([7, 8, 9, -1, 3])
    plain = ditc_loss(docs, docs, docs, docs, queue, queue, 1 / scale)["loss_ditc"].item()
    masked = ditc_loss(docs, docs, docs, docs, queue, queue, 1 / scale, doc_ids, queue_ids, queue_ids)["loss_ditc"]
    orthogonal_keys = (batch - 1) + (batch - 1) + others  # other batch keys, other documents' copies, the rest
    assert plain == pytest.approx(math.log(2 + orthogonal_keys * math.exp(-scale)), rel=1e-9)
    assert masked.item() == pytest.approx(math.log(1 + orthogonal_keys * math.exp(-scale)), rel=1e-9)


def test_same_document_masking_matches_a_naive_loop_forward_and_gradients():
    image, text = unit(4, 8, seed=20, requires_grad=True), unit(4, 8, seed=21, requires_grad=True)
    image_m, text_m, view_m = unit(4, 8, seed=22), unit(4, 8, seed=23), unit(4, 8, seed=24)
    image_q, text_q = unit(6, 8, seed=25), unit(6, 8, seed=26)
    temp = torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
    doc_ids = torch.tensor([0, 1, 1, 2])  # two windows of document 1 in the batch
    queue_ids = torch.tensor([1, -1, 2, 5, 0, 1])  # older copies of 0, 1, 2; -1: unknown, kept
    ids = (doc_ids, queue_ids, queue_ids)
    ditc = ditc_loss(image, text, image_m, text_m, image_q, text_q, temp, *ids)["loss_ditc"]
    naive = (
        naive_queue_contrast_masked(image, text_m, text_q, temp, doc_ids, queue_ids)
        + naive_queue_contrast_masked(text, image_m, image_q, temp, doc_ids, queue_ids)
    ) / 2
    torch.testing.assert_close(ditc.double(), naive)
    assert_same_grads(ditc.double(), naive, (image, text, temp))
    imc = imc_loss(image, view_m, image_q, text, text_m, text_q, temp, *ids)["loss_imc"]
    naive = (
        naive_queue_contrast_masked(image, view_m, image_q, temp, doc_ids, queue_ids)
        + naive_queue_contrast_masked(text, text_m, text_q, temp, doc_ids, queue_ids)
    ) / 2
    torch.testing.assert_close(imc.double(), naive)
    assert_same_grads(imc.double(), naive, (image, text, temp))
    # all ids distinct and unknown queue rows: the same as no ids at all
    distinct = ditc_loss(
        image, text, image_m, text_m, image_q, text_q, temp, torch.arange(4), torch.full((6,), -1), torch.full((6,), -1)
    )["loss_ditc"]
    torch.testing.assert_close(distinct, ditc_loss(image, text, image_m, text_m, image_q, text_q, temp)["loss_ditc"])


# ---- GLITC --------------------------------------------------------------------------------------


def test_glitc_closed_form_when_every_local_equals_its_documents_cls():
    batch, regions, tokens, scale = 3, 9, 5, 8.0
    cls = torch.eye(batch, 8, dtype=torch.float64)
    image_locals = cls[:, None].expand(batch, regions, 8)
    text_locals = cls[:, None].expand(batch, tokens, 8)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    out = glitc_loss(cls, image_locals, cls, text_locals, mask, 1 / scale)["loss_glitc"]
    image = math.log(1 + (batch - 1) * regions * math.exp(-scale))
    text = math.log(1 + (batch - 1) * tokens * math.exp(-scale))
    assert out.item() == pytest.approx((image + text) / 2, rel=1e-9)


def test_glitc_matches_naive_loop_and_padding_changes_nothing():
    image, text = unit(3, 8, seed=20, requires_grad=True), unit(3, 8, seed=21, requires_grad=True)
    image_locals, text_locals = unit(3, 9, 8, seed=22), unit(3, 6, 8, seed=23)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    ours = glitc_loss(image, image_locals, text, text_locals, mask, TEMP)["loss_glitc"]
    full = torch.ones(3, 9, dtype=torch.bool)
    naive = (
        naive_global_local(image, image_locals, full, TEMP) + naive_global_local(text, text_locals, mask, TEMP)
    ) / 2
    torch.testing.assert_close(ours.double(), naive)
    assert_same_grads(ours.double(), naive, (image, text))
    # Rewrite the padded positions and append more padding: nothing may change.
    noisy = torch.where(mask[..., None], text_locals, unit(3, 6, 8, seed=24))
    noisy = torch.cat([noisy, unit(3, 4, 8, seed=25)], dim=1)
    longer = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    padded = glitc_loss(image, image_locals, text, noisy, longer, TEMP)["loss_glitc"]
    torch.testing.assert_close(ours, padded)
    assert_same_grads(ours, padded, (image, text))


def test_pool_patch_regions_averages_blocks_of_the_grid():
    side, hidden = 6, 2
    grid = torch.arange(side * side * hidden, dtype=torch.float32).reshape(1, side * side, hidden)
    pooled = pool_patch_regions(grid)
    assert pooled.shape == (1, 9, hidden)
    blocks = grid.reshape(side, side, hidden)
    torch.testing.assert_close(pooled[0, 0], blocks[:2, :2].reshape(-1, hidden).mean(0))
    torch.testing.assert_close(pooled[0, 5], blocks[2:4, 4:6].reshape(-1, hidden).mean(0))
    assert pool_patch_regions(torch.randn(2, 14 * 14, 4)).shape == (2, 9, 4)
    with pytest.raises(ValueError):
        pool_patch_regions(torch.randn(1, 10, 4))


# ---- PITA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("image,patch,side", [(224, 16, 14), (32, 16, 2), (384, 16, 24), (224, 32, 7)])
def test_patch_grid_is_derived_from_image_and_patch_size(image, patch, side):
    assert patch_grid_side(image, patch) == side


def test_patch_grid_rejects_sizes_that_do_not_tile():
    with pytest.raises(ValueError):
        patch_grid_side(30, 16)


def naive_patch_of(box, side):
    """The patch whose closed square [c*1000/g, (c+1)*1000/g] contains the whole box, by search."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 < x0 or y1 < y0:
        return -1
    cell = 1000 / side
    for row in range(side):
        for col in range(side):
            if col * cell <= x0 and x1 <= (col + 1) * cell and row * cell <= y0 and y1 <= (row + 1) * cell:
                return row * side + col
    return -1


def test_token_patch_index_on_hand_boxes():
    boxes = torch.tensor(
        [
            [
                [0, 0, 500, 500],
                [500, 0, 1000, 400],
                [400, 400, 600, 600],
                [10, 600, 100, 700],
                [0, 0, 0, 0],
                [1000, 1000, 1000, 1000],
                [600, 600, 550, 700],
            ]
        ]
    )
    words = torch.tensor([[True, True, True, True, False, False, True]])
    assert token_patch_index(boxes, words, 2).tolist() == [[0, 1, -1, 2, -1, -1, -1]]
    # the special tokens' boxes would land in corner patches if the mask let them through
    assert token_patch_index(boxes, torch.ones_like(words), 2)[0, 4:6].tolist() == [0, 3]


def test_token_patch_index_matches_a_search_over_patches():
    g = torch.Generator().manual_seed(30)
    x0y0 = torch.randint(0, 1000, (2, 200, 2), generator=g)
    boxes = torch.cat([x0y0, (x0y0 + torch.randint(0, 120, (2, 200, 2), generator=g)).clamp(max=1000)], dim=-1)
    mask = torch.ones(2, 200, dtype=torch.bool)
    for side in (2, 7, 14):
        got = token_patch_index(boxes, mask, side)
        want = [[naive_patch_of(b, side) for b in doc] for doc in boxes.tolist()]
        assert got.tolist() == want
        assert (got >= 0).any() and (got == -1).any()


def pita_example(seed=40):
    """2 documents, a 2x2 grid, 6 tokens each; hidden 5."""
    boxes = torch.tensor(
        [
            [
                [10, 10, 100, 100],
                [600, 20, 900, 300],
                [30, 30, 60, 60],
                [0, 0, 0, 0],
                [510, 510, 990, 990],
                [0, 0, 0, 0],
            ],
            [[550, 10, 700, 90], [560, 100, 600, 200], [20, 520, 480, 980], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
        ]
    )
    words = torch.tensor([[False, True, True, False, True, False], [True, True, True, False, False, False]])
    visual = unit(2, 4, 5, seed=seed, requires_grad=True)
    tokens = unit(2, 6, 5, seed=seed + 1, requires_grad=True)
    return boxes, words, visual, tokens


def naive_pita(visual, tokens, index, mode):
    terms = []
    for b in range(visual.shape[0]):
        text = {}
        for p in range(visual.shape[1]):
            members = [tokens[b, j] for j in range(tokens.shape[1]) if index[b, j] == p]
            if members:
                text[p] = torch.stack(members).mean(0)
        for p, t in text.items():
            if mode == "cosine":
                terms.append(-(visual[b, p] @ t) / (visual[b, p].norm() * t.norm()))
            else:
                t2v = -torch.log(torch.exp(t @ visual[b, p]) / sum(torch.exp(t @ v) for v in visual[b]))
                v2t = -torch.log(torch.exp(visual[b, p] @ t) / sum(torch.exp(visual[b, p] @ u) for u in text.values()))
                terms.append((t2v + v2t) / 2)
    return torch.stack(terms).mean()


@pytest.mark.parametrize("mode", ["cosine", "contrastive"])
def test_pita_matches_naive_loop_forward_and_gradients(mode):
    boxes, words, visual, tokens = pita_example()
    index = token_patch_index(boxes, words, 2)
    assert index.tolist() == [[-1, 1, 0, -1, 3, -1], [1, 1, 2, -1, -1, -1]]
    ours = pita_loss(visual, tokens, index, mode)["loss_pita"]
    naive = naive_pita(visual, tokens, index, mode)
    torch.testing.assert_close(ours.double(), naive)
    assert_same_grads(ours.double(), naive, (visual, tokens))


@pytest.mark.parametrize("mode", ["cosine", "contrastive"])
def test_pita_ignores_padding_and_tokens_spanning_several_patches(mode):
    boxes, words, visual, tokens = pita_example()
    base = pita_loss(visual, tokens, token_patch_index(boxes, words, 2), mode)["loss_pita"]
    # Append a token whose box spans all four patches and two padding tokens, with random states.
    extra_boxes = torch.tensor([[400, 400, 600, 600], [10, 10, 20, 20], [10, 10, 20, 20]]).expand(2, 3, 4)
    extra_words = torch.tensor([True, False, False]).expand(2, 3)
    more_tokens = torch.cat([tokens, 50 * unit(2, 3, 5, seed=50)], dim=1)
    index = token_patch_index(torch.cat([boxes, extra_boxes], 1), torch.cat([words, extra_words], 1), 2)
    assert (index[:, -3:] == -1).all()
    other = pita_loss(visual, more_tokens, index, mode)["loss_pita"]
    torch.testing.assert_close(base, other)
    assert_same_grads(base, other, (visual, tokens))


def test_pita_closed_forms():
    scale = 3.0
    text = torch.eye(4, 4, dtype=torch.float64)[None]  # a 2x2 grid; patch p's tokens have state e_p
    index = torch.arange(4)[None]
    assert pita_loss(2 * text, text, index, "cosine")["loss_pita"].item() == pytest.approx(-1.0)
    # contrastive, all patches hold text: both directions are log(1 + 3 e^-s)
    out = pita_loss(scale * text, text, index, "contrastive")["loss_pita"].item()
    assert out == pytest.approx(math.log(1 + 3 * math.exp(-scale)))
    # only patches 0 and 3 hold text: text->visual still sees 4 patches, visual->text only 2 texts
    half = torch.tensor([[0, 3, -1, -1]])
    tokens = torch.eye(4, 4, dtype=torch.float64)[None][:, [0, 3, 1, 2]]
    out = pita_loss(scale * text, tokens, half, "contrastive")["loss_pita"].item()
    assert out == pytest.approx((math.log(1 + 3 * math.exp(-scale)) + math.log(1 + math.exp(-scale))) / 2)
    with pytest.raises(ValueError):
        pita_loss(text, text, index, "dot")


def test_patch_text_features_average_tokens_per_patch():
    tokens = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [7.0, 7.0]]])
    feats, has_text = patch_text_features(tokens, torch.tensor([[2, 2, -1, 0]]), 4)
    torch.testing.assert_close(feats[0], torch.tensor([[7.0, 7.0], [0.0, 0.0], [2.0, 1.0], [0.0, 0.0]]))
    assert has_text.tolist() == [[True, False, True, False]]


# ---- VLCDoC supervised contrast -----------------------------------------------------------------


def naive_supcon(anchors, contrast, a_labels, c_labels, t, self_index=None):
    per_anchor = []
    for i in range(anchors.shape[0]):
        others = [j for j in range(contrast.shape[0]) if self_index is None or j != self_index[i]]
        positives = [j for j in others if c_labels[j] == a_labels[i]]
        if not positives:
            continue
        den = sum(torch.exp(anchors[i] @ contrast[j] / t) for j in others)
        per_anchor.append(
            -torch.stack([torch.log(torch.exp(anchors[i] @ contrast[p] / t) / den) for p in positives]).mean()
        )
    return torch.stack(per_anchor).mean()


def test_supcon_closed_forms():
    scale = 5.0
    feats = torch.eye(4, 8, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    # intra: every logit between different documents is 0, so each anchor's term is log 3
    assert supcon_intra(feats, feats, labels, 1 / scale)["loss_intra"].item() == pytest.approx(math.log(3))
    # inter: positives are the own pair (logit s) and the class mate (0) among 4 keys
    lse = math.log(math.exp(scale) + 3)
    assert supcon_inter(feats, feats, labels, 1 / scale)["loss_inter"].item() == pytest.approx(lse - scale / 2)


def test_supcon_matches_naive_loop_forward_and_gradients():
    vision, text = unit(6, 8, seed=60, requires_grad=True), unit(6, 8, seed=61, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])  # class 2 has one member: no intra positive
    own = torch.arange(6)
    inter = supcon_inter(vision, text, labels, TEMP)["loss_inter"]
    naive = (naive_supcon(vision, text, labels, labels, TEMP) + naive_supcon(text, vision, labels, labels, TEMP)) / 2
    torch.testing.assert_close(inter.double(), naive)
    assert_same_grads(inter.double(), naive, (vision, text))
    intra = supcon_intra(vision, text, labels, TEMP)["loss_intra"]
    naive = (
        naive_supcon(vision, vision, labels, labels, TEMP, own) + naive_supcon(text, text, labels, labels, TEMP, own)
    ) / 2
    torch.testing.assert_close(intra.double(), naive)
    assert_same_grads(intra.double(), naive, (vision, text))
    # the core with self removed equals the intra term of one modality
    torch.testing.assert_close(
        sup_contrastive(vision, vision, labels, labels, TEMP, own).double(),
        naive_supcon(vision, vision, labels, labels, TEMP, own),
    )
