"""Model-based report metrics: clear messages when files are missing; SembScore's code path
on a randomly initialised BERT saved in CheXbert's checkpoint layout (not the real weights,
so this proves the loading and the cosine, not published numbers)."""
from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from medmo.eval import model_metrics as MM

WORDS = ["heart", "normal", "lungs", "clear", "effusion", "no", "large", "left", "."]


@pytest.fixture
def fake_chexbert(tmp_path, monkeypatch):
    bert_dir = tmp_path / "bert-base-uncased"
    bert_dir.mkdir()
    (bert_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(str(bert_dir / "vocab.txt")).save_pretrained(bert_dir)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    config.save_pretrained(bert_dir)
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False).eval()
    state = {f"module.bert.{k}": v for k, v in model.state_dict().items()}
    state["module.linear_heads.0.weight"] = torch.zeros(4, 32)  # CheXbert's heads, ignored for embeddings
    torch.save({"model_state_dict": state, "epoch": 1}, tmp_path / "chexbert.pth")
    monkeypatch.setenv(MM.ENV, str(tmp_path))
    return model, BertTokenizer.from_pretrained(bert_dir)


def test_missing_files_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv(MM.ENV, str(tmp_path))
    ok, notes = MM.available_metrics()
    assert ok == []
    assert any(f"{tmp_path}/chexbert.pth" in n and n.startswith("sembscore skipped") for n in notes)
    assert any(f"{tmp_path}/RaTE-NER-Deberta" in n for n in notes)
    monkeypatch.delenv(MM.ENV)
    assert "$MEDMO_REPORT_MODELS (unset)" in MM.available_metrics()[1][0]
    assert MM.model_metrics(["a"], ["a"], names=("sembscore",)) == {"notes": [MM.available_metrics()[1][1]]}


def test_sembscore_on_checkpoint_layout(fake_chexbert):
    model, tok = fake_chexbert
    assert "sembscore" in MM.available_metrics()[0]
    refs = ["heart normal . lungs clear .", "large left effusion ."]
    hyps = ["heart normal . lungs clear .", "no effusion ."]
    scores = MM.sembscore(refs, hyps)
    assert scores[0] == pytest.approx(1.0, abs=1e-6)  # same text, same embedding
    with torch.no_grad():  # the loaded weights are the saved ones: same [CLS] vectors as the original model
        cls = model(**tok(refs[1:] + hyps[1:], padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    assert scores[1] == pytest.approx(float(torch.nn.functional.cosine_similarity(cls[:1], cls[1:])), abs=1e-5)
    out = MM.model_metrics(refs, hyps, names=("sembscore",))
    assert out["sembscore"] == pytest.approx(sum(scores) / 2) and "notes" not in out
