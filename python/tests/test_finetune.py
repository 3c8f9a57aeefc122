"""python -m lina.finetune on the CPU with a tiny GLA: the loss goes down, and a run stopped and
resumed ends with exactly the weights of an uninterrupted one."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from lina import finetune  # noqa: E402
from lina.models import ForCausalLM, ModelConfig  # noqa: E402

TEXT = "\n\n".join(["the cat sat on the mat. " * 3, "a dog ran in the park. " * 2, "the cat ran. " * 4] * 20)


def _setup(tmp_path):
    torch.manual_seed(0)
    model = ForCausalLM(ModelConfig(dict(model_type="gla", hidden_size=32, num_hidden_layers=1, num_heads=2,
                                         vocab_size=259)))
    model.save_pretrained(tmp_path / "base")
    (tmp_path / "data.txt").write_text(TEXT)


def _run(tmp_path, out, steps, *extra):
    return finetune.train(finetune.parse_args([
        "--model", str(tmp_path / "base"), "--output", str(tmp_path / out), "--data", str(tmp_path / "data.txt"),
        "--tokenizer", "bytes", "--seq-len", "48", "--grad-accum", "2", "--steps", str(steps), "--lr", "3e-3",
        "--warmup", "3", "--dtype", "fp32", "--device", "cpu", "--log-every", "5", *extra]))


def test_loss_goes_down_and_resume_is_exact(tmp_path):
    _setup(tmp_path)
    losses = _run(tmp_path, "full", 24)
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses

    _run(tmp_path, "split", 24, "--stop-after", "10")
    _run(tmp_path, "split", 24, "--resume")
    from safetensors.torch import load_file
    full, split = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "split" / "model.safetensors")
    assert full.keys() == split.keys()
    for k in full:
        assert torch.equal(full[k], split[k]), k


def test_bad_arguments_are_reported(tmp_path, capsys):
    _setup(tmp_path)
    with pytest.raises(SystemExit):
        finetune.parse_args(["--model", "m", "--output", "o", "--data", "d", "--seq-len", "0"])
    assert "--seq-len: expected a positive integer; got 0" in capsys.readouterr().err
    code = finetune.main(["--model", str(tmp_path / "base"), "--output", str(tmp_path / "o"), "--data",
                          str(tmp_path / "missing.txt"), "--tokenizer", "bytes", "--device", "cpu"])
    assert code == 1 and "--data: cannot read" in capsys.readouterr().err
    code = finetune.main(["--model", str(tmp_path / "base"), "--output", str(tmp_path / "o2"), "--data",
                          str(tmp_path / "data.txt"), "--tokenizer", "bytes", "--device", "cpu", "--resume"])
    assert code == 1 and "--resume: no checkpoint" in capsys.readouterr().err
