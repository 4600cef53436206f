"""Fine-tuning loop: learns an easy choice task in every mode, freezes what it should, stops early."""

from __future__ import annotations

import random

import pytest
import torch

from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig
from emergence.models.heads import ClassificationHead, ModelWithHead
from emergence.tasks import Example
from emergence.tokenizers import CharTokenizer
from emergence.train.mlm import FinetuneConfig, encode_choice_examples, evaluate_classifier, finetune

TOK = CharTokenizer("abxy")


def _examples(n: int, seed: int) -> list[Example]:
    """Label = whether the string contains more a's than b's (random length, random filler)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice("abxy") for _ in range(rng.randint(3, 8)))
        if s.count("a") == s.count("b"):
            s += "a"
        out.append(Example(s, "yes" if s.count("a") > s.count("b") else "no", ("yes", "no")))
    return out


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=2, d_model=32, n_ctx=16))


def test_encode_choice_examples() -> None:
    ids, lengths, labels = encode_choice_examples(
        [Example("ab", "no", ("yes", "no")), Example("a", "yes", ("yes", "no"))], TOK, 16
    )
    assert ids.tolist() == [[1, *TOK.encode("ab")], [1, *TOK.encode("a"), 0]]
    assert lengths.tolist() == [3, 2] and labels.tolist() == [1, 0]
    with pytest.raises(UserError):
        encode_choice_examples([Example("a", "b")], TOK, 16)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_finetune_learns_and_keeps_the_best_weights(mode: str) -> None:
    model = _model()
    frozen_before = model.embed.weight.detach().clone()
    head = ClassificationHead(32, 2, pool="last")
    cfg = FinetuneConfig(mode=mode, steps=150, batch_size=32, lr=3e-3, eval_every=25, patience=10)  # type: ignore[arg-type]
    result = finetune(model, head, _examples(400, 0), _examples(100, 1), TOK, cfg)
    assert result.best_val_accuracy > 0.8, result.history
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)
    # The returned model holds the best weights: re-evaluating gives the best validation loss.
    val = encode_choice_examples(_examples(100, 1), TOK, 16)
    assert evaluate_classifier(ModelWithHead(model, head), val, 32)[0] == pytest.approx(
        result.best_val_loss, rel=1e-5
    )
    assert torch.equal(model.embed.weight, frozen_before) == (mode == "lora")


def test_head_only_mode_and_early_stopping() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = ClassificationHead(32, 2, pool="last")
    cfg = FinetuneConfig(mode="head", steps=200, lr=0.0, eval_every=10, patience=2)
    result = finetune(model, head, _examples(64, 0), _examples(32, 1), TOK, cfg)
    assert result.stopped_early and len(result.history) == 3 and result.best_step == 10
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="lora_targets"):
        FinetuneConfig(lora_targets=("attn.q",))
