"""Nothing executed (crafted YAML, prompt.json and tensor files) and determinism across
processes.

Each payload is first shown to create its marker file under an unsafe loader, so the
test proves something: pet_kit then reads the same bytes without creating it.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import NEG, POS, tiny_clf

from pet_kit import ConfigError, PromptClassifier, SavedPromptError, load_pvp, load_verbalizer
from pet_kit.cli import main
from pet_kit.io.prompt_folder import META_FILE, TENSOR_FILE, _sha256

CORPUS = Path(__file__).parent / "bad_inputs"
MARKER = "pet_kit_pwned_marker"
YAML_PAYLOADS = [
    "pvp/python_object_apply.yaml",
    "pvp/anchor_on_python_object.yaml",
    "pvp/python_tag_in_label_word.yaml",
]


class _Payload:
    def __reduce__(self):
        return (open, (MARKER, "w"))


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", YAML_PAYLOADS)
def test_yaml_payloads_are_not_executed(name, in_tmp, capsys):
    text = (CORPUS / name).read_text(encoding="utf-8")
    yaml.load(text, Loader=yaml.UnsafeLoader)  # the payload is real ...
    assert (in_tmp / MARKER).exists()
    (in_tmp / MARKER).unlink()
    path = in_tmp / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    for loader in (load_pvp, load_verbalizer):  # ... and pet_kit never runs it
        with pytest.raises(ConfigError, match="never executed"):
            loader(str(path))
    verbalizer_ref = in_tmp / "pvp.yaml"
    verbalizer_ref.write_text('pattern: "{text} [MASK]"\nverbalizer: spec.yaml\n')
    with pytest.raises(ConfigError, match=r"spec\.yaml:.*never executed"):
        load_pvp(str(verbalizer_ref))
    assert main(["validate", str(path)]) == 1
    train = in_tmp / "train.yaml"
    train.write_text(f"pvp: spec.yaml\ndata: {{train: t.csv}}\noutput: o\n{text}")
    assert main(["train", str(train)]) == 1
    capsys.readouterr()
    assert not (in_tmp / MARKER).exists()


@pytest.fixture()
def saved(make_clf, toy_data, in_tmp):
    return make_clf().fit(*toy_data).save(in_tmp / "prompt")


def _rewrite(folder: Path, edit) -> None:
    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    edit(meta)
    meta["files"][TENSOR_FILE] = _sha256(folder / TENSOR_FILE)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")


def test_json_payloads_are_inert_data(saved, in_tmp, toy_data):
    """Payload-shaped values in prompt.json stay strings: loading is harmless."""
    reduce_ = {"py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [MARKER, "w"]}]}
    yaml_tag = f"!!python/object/apply:builtins.open ['{MARKER}', 'w']"

    def edit(meta):
        meta["pvp"]["name"] = yaml_tag
        meta["pvp"]["verbalizer"]["name"] = yaml_tag
        meta["history"] = {"py/object": "builtins.open", "__reduce__": reduce_}
        meta["params"]["__class__"] = reduce_
        meta["created"] = yaml_tag

    _rewrite(saved, edit)
    loaded = PromptClassifier.load(saved)
    assert loaded.pvp_.name == yaml_tag  # kept as text, never interpreted
    assert loaded.predict_proba(toy_data[0]).shape == (16, 2)
    assert not (in_tmp / MARKER).exists()


def test_json_payload_in_the_pattern_is_an_error(saved, in_tmp):
    def edit(meta):
        meta["pvp"]["pattern"] = f"!!python/object/apply:builtins.open ['{MARKER}', 'w']"
        meta["pvp"]["verbalizer"]["labels"] = [[{"py/reduce": "os.system"}, ["good"]]]

    _rewrite(saved, edit)
    with pytest.raises(SavedPromptError, match=r"prompt\.json: incomplete or invalid"):
        PromptClassifier.load(saved)
    assert not (in_tmp / MARKER).exists()


def test_pickled_tensor_file_is_never_unpickled(saved, in_tmp):
    torch.save({"slots": _Payload()}, saved / TENSOR_FILE)
    pickle.loads(pickle.dumps(_Payload()))  # the payload is real ...
    assert (in_tmp / MARKER).exists()
    (in_tmp / MARKER).unlink()
    _rewrite(saved, lambda meta: None)  # checksum made to match: only the format protects
    with pytest.raises(SavedPromptError, match="unreadable safetensors file"):
        PromptClassifier.load(saved)
    assert main(["predict", str(saved), str(CORPUS / "data" / "multilingual.txt")]) == 1
    assert not (in_tmp / MARKER).exists()


# ------------------------------------------------------------------ determinism
_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from conftest import NEG, POS, tiny_clf
    X, y = POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG)
    clf = tiny_clf(sys.argv[1], epochs=2).fit(X, y)
    sys.stdout.write(clf.predict_proba(X).tobytes().hex())
""")


def test_same_seed_same_probabilities_across_processes(tiny_dir):
    script = _SCRIPT.format(tests=str(Path(__file__).parent))
    procs = []
    for seed in ("1", "2"):  # different hash seeds: set/dict order must not matter
        env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(tiny_dir)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        )
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        outputs.append(out.decode())
    assert outputs[0] == outputs[1]
    X, y = POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG)
    here = tiny_clf(tiny_dir, epochs=2).fit(X, y)
    other = np.frombuffer(bytes.fromhex(outputs[0]), dtype=np.float64).reshape(len(X), 2)
    np.testing.assert_array_equal(other, here.predict_proba(X))  # and this process too
