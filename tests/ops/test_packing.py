"""Tests for rltrain/ops/packing.py: bin planning, and packed == padded log-probs on a tiny model (fp32, 1e-5)."""

import pytest
import torch

from rltrain.ops.logprobs import token_logprobs
from rltrain.ops.packing import block_causal_mask, pack, plan_bins, segment_ids, unpack


def test_plan_bins_first_fit_decreasing():
    # lengths 5,4,3,3,1 into capacity 8: 5+3 | 4+3+1 (decreasing order: 5,4,3,3,1)
    assert plan_bins([3, 5, 1, 4, 3], 8) == [[1, 0], [3, 4, 2]]
    assert plan_bins([10, 2], 8) == [[0], [1]]  # an over-long sample gets its own bin, uncut


def test_pack_positions_and_masks():
    packed = pack([[11, 12, 13], [21, 22], [31]], [[0, 1, 1], [0, 1], [1]], capacity=8, pad_id=0)
    assert packed.input_ids.tolist() == [[11, 12, 13, 21, 22, 31]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 0, 1, 0]]
    assert packed.loss_mask.tolist() == [[0, 1, 1, 0, 1, 1]]
    assert packed.cu_seqlens(0).tolist() == [0, 3, 5, 6]
    assert segment_ids(packed.position_ids).tolist() == [[0, 0, 0, 1, 1, 2]]
    assert [t.tolist() for t in unpack(packed.input_ids, packed)] == [[11, 12, 13], [21, 22], [31]]
    mask = block_causal_mask(packed.position_ids)[0, 0] == 0
    assert mask[4].tolist() == [False, False, False, True, True, False]  # token 22 sees 21 and itself only


def test_padding_never_leaks_into_a_sample():
    packed = pack([[1, 2, 3], [4, 5]], [[1, 1, 1], [1, 1]], capacity=3, pad_id=0)
    assert packed.input_ids.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert packed.position_ids[1].tolist() == [0, 1, 2]  # the pad continues the sample's positions...
    allowed = block_causal_mask(packed.position_ids)[1, 0] == 0
    assert not allowed[1, 2]  # ...and a sample token never attends to it (causal)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_equals_padded_logprobs(attn):
    """The packed forward gives every sample exactly the log-probs it gets alone in a padded batch."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=128, attn_implementation=attn)
    model = LlamaForCausalLM(config).eval()
    lengths = [7, 3, 12, 5, 9]
    seqs = [torch.randint(1, 97, (n,)).tolist() for n in lengths]

    width = max(lengths)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    att = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        att[i, :len(s)] = 1
    with torch.no_grad():
        padded = token_logprobs(model(input_ids=ids, attention_mask=att).logits[:, :-1], ids[:, 1:])

    packed = pack(seqs, [[1] * n for n in lengths], capacity=16, pad_id=0)
    assert len(packed.seq_lens) < len(seqs)  # really packed
    with torch.no_grad():
        logits = model(input_ids=packed.input_ids, position_ids=packed.position_ids,
                       attention_mask=block_causal_mask(packed.position_ids)).logits
    per_token = torch.nn.functional.pad(token_logprobs(logits[:, :-1], packed.input_ids[:, 1:]), (1, 0))
    for i, got in enumerate(unpack(per_token, packed)):
        n = lengths[i]
        torch.testing.assert_close(got[1:], padded[i, :n - 1], atol=1e-5, rtol=0)
