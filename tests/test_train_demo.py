"""scripts/train_demo.py --tiny end to end: upstream checkpoint layout, ONNX parity, clean corpus."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
np = pytest.importorskip("numpy")

from mailwoman_eval.checkpoints.model import MailwomanCoarseEncoder  # noqa: E402
from mailwoman_eval.labels import STAGE2_TAGS, bio_labels  # noqa: E402
from mailwoman_eval.tokenizer import Tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "train_demo.py"
GOLDEN = REPO / "golden" / "demo-v1"
LABELS = bio_labels(STAGE2_TAGS + ("unit", "po_box"))
RUNS = ("baseline", "regressed")
HEADER = "step,wall_seconds,train_loss,lr,val_loss,val_macro_f1"


def _load_script():
    spec = importlib.util.spec_from_file_location("train_demo", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("train_demo", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def td():
    return _load_script()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-runs")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


def _steps(run: Path) -> list[Path]:
    return sorted(p for p in run.iterdir() if p.is_dir() and p.name.startswith("step-"))


@pytest.mark.parametrize("name", RUNS)
def test_layout(tiny: Path, name: str):
    run = tiny / name
    steps = _steps(run)
    assert [p.name for p in steps] == ["step-000010", "step-000020"]
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp-")]
    for step in steps:
        assert sorted(p.name for p in step.iterdir()) == [
            "config.json",
            "pytorch_model.bin",
            "training_state.json",
        ]
        cfg = json.loads((step / "config.json").read_text())
        assert cfg["model_type"] == "mailwoman-coarse-encoder"
        assert cfg["id2label"] == {str(i): lab for i, lab in enumerate(LABELS)}
        assert cfg["label2id"] == {lab: i for i, lab in enumerate(LABELS)}
        assert cfg["num_labels"] == 25 and cfg["max_position_embeddings"] == 128 and cfg["pad_token_id"] == 0
        assert (
            cfg["use_crf"] is True
            and cfg["crf_normalization"] == "per_sequence"
            and cfg["class_weights"] is None
        )
        state = json.loads((step / "training_state.json").read_text())
        assert state["step"] == int(step.name[5:])
        assert state["vocab_size"] == cfg["vocab_size"]
        data, train = state["config"]["data"], state["config"]["train"]
        assert set(state["config"]) == {"data", "model", "train"}
        assert data["tokenizer_dir"] == "." and data["max_length"] == 128
        assert isinstance(data["source_weights"], dict) and data["source_weights"]
        for key in ("learning_rate", "warmup_steps", "max_steps", "seed", "batch_size"):
            assert key in train
    tok = Tokenizer(run / "tokenizer.model")
    assert tok.vocab_size == cfg["vocab_size"]
    sp = tok.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
    assert sp.id_to_piece(0) == "<pad>"
    for f in ("model.onnx", "model.int8.onnx", "crf-transitions.json"):
        assert (run / "onnx" / f).is_file()


def test_runs_share_tokenizer_and_differ_only_in_source_weights(tiny: Path):
    a, b = ((tiny / n / "tokenizer.model").read_bytes() for n in RUNS)
    assert a == b
    sa, sb = (json.loads((tiny / n / "step-000020" / "training_state.json").read_text()) for n in RUNS)
    assert sa["config"]["model"] == sb["config"]["model"]
    ta, tb = dict(sa["config"]["train"]), dict(sb["config"]["train"])
    ta.pop("output_dir"), tb.pop("output_dir")
    assert ta == tb  # --tiny gives both runs the same save/ship steps
    wa, wb = sa["config"]["data"]["source_weights"], sb["config"]["data"]["source_weights"]
    assert wa.keys() == wb.keys()
    changed = {k for k in wa if wa[k] != wb[k]}
    assert changed == {"us-postcode-first", "fr-postcode-first", "mid-postcode"}
    assert all(wb[k] < wa[k] for k in changed)


@pytest.mark.parametrize("name", RUNS)
def test_train_log(tiny: Path, name: str, td):
    lines = (tiny / name / "train_log.csv").read_text().splitlines()
    assert lines[0] == HEADER
    rows = list(csv.DictReader(lines))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    state = json.loads((tiny / name / "step-000020" / "training_state.json").read_text())["config"]["train"]
    for r in rows:
        step = int(r["step"])
        float(r["wall_seconds"]), float(r["train_loss"])
        # lr logged after the scheduler step = peak × factor(step) (upstream-formats.md §10.4)
        want = state["learning_rate"] * td.lr_factor(step, state["warmup_steps"], state["max_steps"])
        assert math.isclose(float(r["lr"]), want, rel_tol=1e-5, abs_tol=1e-10)
        if step in (10, 20):
            assert float(r["val_loss"]) > 0 and 0 <= float(r["val_macro_f1"]) <= 1
        else:
            assert r["val_loss"] == "" and r["val_macro_f1"] == ""


def _model(step: Path) -> MailwomanCoarseEncoder:
    cfg = json.loads((step / "config.json").read_text())
    labels = [cfg["id2label"][str(i)] for i in range(cfg["num_labels"])]
    model = MailwomanCoarseEncoder(cfg, labels)
    sd = torch.load(step / "pytorch_model.bin", map_location="cpu", weights_only=True)
    assert all(t.dtype == torch.float32 for t in sd.values())
    model.load_state_dict(sd, strict=True)
    return model.eval()


@pytest.mark.parametrize("name", RUNS)
def test_state_dict_loads_strictly_and_onnx_matches(tiny: Path, name: str):
    run = tiny / name
    model = _model(run / "step-000020")
    tok = Tokenizer(run / "tokenizer.model")
    raws = ["12 Rue de la Paix, 75002 Paris", "1600 Pennsylvania Avenue NW, Washington, DC 20500"]
    encs = [tok.encode(r).ids for r in raws]
    sess = ort.InferenceSession(str(run / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    for length in (7, 128):
        ids = np.zeros((2, length), dtype=np.int64)
        mask = np.zeros((2, length), dtype=np.int64)
        for i, e in enumerate(encs):
            e = e[:length]
            ids[i, : len(e)] = e
            mask[i, : len(e)] = 1
        got = sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        assert got.dtype == np.float32 and got.shape == (2, length, 25)
        assert np.abs(got - ref).max() <= 1e-4
    int8 = ort.InferenceSession(str(run / "onnx" / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    one = np.ones((1, 128), dtype=np.int64)
    assert int8.run(["logits"], {"input_ids": one, "attention_mask": one})[0].shape == (1, 128, 25)

    side = json.loads((run / "onnx" / "crf-transitions.json").read_text())
    assert side["labels"] == LABELS
    np.testing.assert_allclose(side["transitions"], model.crf.transitions.detach().numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(
        side["start_transitions"], model.crf.start_transitions.detach().numpy(), atol=1e-7
    )
    np.testing.assert_allclose(side["end_transitions"], model.crf.end_transitions.detach().numpy(), atol=1e-7)
    assert all(math.isfinite(x) for row in side["transitions"] for x in row)


def _golden_keys() -> set[str]:
    keys = set()
    for path in sorted(GOLDEN.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.add(" ".join(json.loads(line)["raw"].split()).lower())
    return keys


@pytest.mark.parametrize("name", RUNS)
def test_corpus_shares_no_raw_with_golden(td, name: str):
    if not GOLDEN.is_dir():
        pytest.skip("golden/demo-v1 is absent")
    keys = _golden_keys()
    assert keys
    seed = td.TRAIN_CONFIG["seed"]
    for s, n in ((seed, 20000), (seed + 1, td.DATA_CONFIG["val_rows"])):
        rows = td.generate_corpus(name, s, n)
        assert len(rows) == n
        assert not {" ".join(r.raw.split()).lower() for r in rows} & keys


def test_generated_spans_are_exact(td):
    rows = td.generate_corpus("baseline", 7, 2000, exclude=set())
    assert rows == td.generate_corpus("baseline", 7, 2000, exclude=set())  # deterministic
    for row in rows:
        assert row.spans
        for tag, s, e in row.spans:
            assert 0 <= s < e <= len(row.raw) and row.raw[s:e] == row.raw[s:e].strip()
            assert tag in STAGE2_TAGS + ("unit", "po_box")
    assert {r.source for r in rows} >= {
        "us-standard",
        "fr-standard",
        "fr-postcode-first",
        "mid-postcode",
        "non-latin",
    }


def test_excluded_raws_are_dropped_and_replaced(td):
    rows = td.generate_corpus("regressed", 11, 500, exclude=set())
    victims = {td.normalize_raw(r.raw) for r in rows[:50]}
    stats: dict = {}
    again = td.generate_corpus("regressed", 11, 500, exclude=victims, stats=stats)
    assert len(again) == 500 and stats["dropped_golden_rows"] >= 50
    assert not {td.normalize_raw(r.raw) for r in again} & victims
