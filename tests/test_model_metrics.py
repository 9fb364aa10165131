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


# ---------------------------------------------------------------------------- CheXbert F1

REPORTS = ["heart normal . lungs clear .", "large left effusion .", "no effusion .", "", "heart large ."]


@pytest.fixture
def fake_chexbert_labeler(fake_chexbert, tmp_path):
    """The fake_chexbert BERT plus CheXbert's 14 heads (13 x 4 classes, No Finding x 2), random."""
    model, tok = fake_chexbert
    torch.manual_seed(1)
    heads = [torch.nn.Linear(32, 4 if i < 13 else 2) for i in range(14)]
    with torch.no_grad():  # an untrained BERT's [CLS] vectors barely differ: steep heads centred on their mean
        mean = model(**tok(REPORTS, padding=True, return_tensors="pt")).last_hidden_state[:, 0].mean(0)
        for head in heads:
            head.weight *= 3000
            head.bias.copy_(-head.weight @ mean)
    state = {f"module.bert.{k}": v for k, v in model.state_dict().items()}
    for i, head in enumerate(heads):
        state[f"module.linear_heads.{i}.weight"], state[f"module.linear_heads.{i}.bias"] = head.weight.data, head.bias.data
    torch.save({"model_state_dict": state}, tmp_path / "chexbert.pth")
    return model, tok, heads



def test_chexbert_labels_are_the_heads_argmax_in_label_report_convention(fake_chexbert_labeler):
    model, tok, heads = fake_chexbert_labeler
    labels = MM.chexbert_labels(REPORTS)
    with torch.no_grad():
        cls = model(**tok(REPORTS, padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    convention = {0: None, 1: 1, 2: 0, 3: -1}  # CheXbert classes: blank, positive, negative, uncertain
    for row, got in zip(cls, labels):
        want = {o: convention[int(h(row).argmax())] for o, h in zip(MM.CHEXBERT_OBSERVATIONS, heads)}
        assert got == {o: v for o, v in want.items() if v is not None}
    assert len({tuple(sorted(d.items())) for d in labels}) > 1  # the reports are told apart


def test_chexbert_head_order_and_classes(fake_chexbert_labeler, tmp_path):
    _, _, heads = fake_chexbert_labeler
    chosen = {"Cardiomegaly": 1, "Edema": 3, "Atelectasis": 2, "No Finding": 1}  # head -> forced class
    state = torch.load(tmp_path / "chexbert.pth")["model_state_dict"]
    for i, obs in enumerate(MM.CHEXBERT_OBSERVATIONS):
        w = state[f"module.linear_heads.{i}.weight"]
        state[f"module.linear_heads.{i}.weight"] = torch.zeros_like(w)
        state[f"module.linear_heads.{i}.bias"] = torch.nn.functional.one_hot(torch.tensor(chosen.get(obs, 0)),
                                                                              w.shape[0]).float()
    torch.save({"model_state_dict": state}, tmp_path / "chexbert.pth")
    assert MM.chexbert_labels(["anything at all"]) == [{"Cardiomegaly": 1, "Edema": -1, "Atelectasis": 0,
                                                        "No Finding": 1}]


# (references, hypotheses) -> F1 by hand; "present" = positive or uncertain (CheXbert scorer's rrg mode)
REFS = [{"Cardiomegaly": 1, "Edema": 1}, {"Pleural Effusion": 1}, {"No Finding": 1}, {"Atelectasis": -1}]
HYPS = [{"Cardiomegaly": 1, "Lung Lesion": 0}, {"Pleural Effusion": 1, "Edema": 1}, {"Support Devices": 1},
        {"Atelectasis": 1}]
# per observation: Cardiomegaly, Pleural Effusion, Atelectasis tp=1 (F1 1); Edema fp=1 fn=1 (F1 0);
# No Finding fn=1, Support Devices fp=1 (F1 0); the other 8 never present (F1 0, counted in macro)


@pytest.mark.parametrize("uncertain_as_positive, want", [
    (True, {"micro14": 6 / 10, "macro14": 3 / 14, "micro5": 6 / 8, "macro5": 3 / 5}),
    # Atelectasis's uncertain reference is then absent: a false positive instead of a hit
    (False, {"micro14": 4 / 9, "macro14": 2 / 14, "micro5": 4 / 7, "macro5": 2 / 5}),
])
def test_label_f1_hand_table(uncertain_as_positive, want):
    assert MM.label_f1(REFS, HYPS, uncertain_as_positive) == pytest.approx(want)
    with pytest.raises(ValueError, match="pair up"):
        MM.label_f1(REFS, HYPS[:2])


def test_chexbert_f1_in_report_metrics(fake_chexbert_labeler):
    refs, hyps = REPORTS[:3], REPORTS[2:]
    out = MM.model_metrics(refs, hyps, names=("sembscore", "chexbert_f1"))
    labels = MM.chexbert_labels(refs + hyps)
    want = MM.label_f1(labels[:3], labels[3:])
    assert {k: out[f"chexbert_f1_{k}"] for k in want} == pytest.approx(want) and "notes" not in out


def test_chexbert_f1_missing_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(MM.ENV, str(tmp_path))
    out = MM.model_metrics(["a"], ["b"], names=("chexbert_f1",))
    assert not any(k.startswith("chexbert_f1_") for k in out)
    assert out["notes"] == [f"chexbert_f1 skipped: needs {tmp_path}/chexbert.pth, {tmp_path}/bert-base-uncased "
                            "(rule_chexpert_f1_* is only a rule-based approximation)"]
