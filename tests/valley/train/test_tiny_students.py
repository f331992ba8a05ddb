"""Tiny students: deterministic HF dirs that transformers, torchtune and the eval chat path all read alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.valley.train.train_helpers import mini_run, tiny_model
from valley.chat import CHAT_TEMPLATES

PRESETS = {"tiny-qwen": "qwen2_5", "tiny-llama": "llama3_1"}
CONVERSATION = [
    {"role": "user", "content": "Print the sum of 2 and 3."},
    {"role": "assistant", "content": "<think>\n2 + 3 = 5\n</think>\n```python\nprint(2 + 3)\n```"},
]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_fetch_builds_identical_bytes_and_reuses_a_complete_dir(valley, tmp_path, tmp_path_factory, preset):
    built_in_process = tiny_model(tmp_path_factory, preset)
    out = tmp_path / "m"
    valley(["model", "fetch", "--preset", preset, "--out", out])
    assert _files(out) == _files(built_in_process)
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        ".valley-model.json",
    } <= set(_files(out))

    stamp = (out / "model.safetensors").stat().st_mtime_ns
    second = valley(["model", "fetch", "--preset", preset, "--out", out])
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert preset in second.stdout

    other = next(p for p in PRESETS if p != preset)
    clash = valley(["model", "fetch", "--preset", other, "--out", out], check=False)
    assert clash.returncode == 1 and "--out" in clash.stderr and len(clash.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("preset", PRESETS)
def test_transformers_loads_the_real_architecture_with_the_family_template(tmp_path_factory, preset):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = tiny_model(tmp_path_factory, preset)
    family = PRESETS[preset]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())

    assert config["architectures"] == ["Qwen2ForCausalLM" if family == "qwen2_5" else "LlamaForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] == 32  # vLLM CPU attention needs >= 32
    if family == "llama3_1":
        assert config["rope_parameters"]["rope_type"] == "llama3"
    assert tokenizer.chat_template == CHAT_TEMPLATES[family]
    prompt = tokenizer.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    if family == "qwen2_5":
        assert prompt.startswith("<|im_start|>system\nYou are Qwen") and prompt.endswith("<|im_start|>assistant\n")
    else:
        assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge")
        assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    stop = json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"]
    assert tokenizer.eos_token_id in stop
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 4


@pytest.mark.parametrize("preset", PRESETS)
def test_torchtune_loads_the_checkpoint_with_transformers_logits(tmp_path, tmp_path_factory, preset):
    import torch
    from omegaconf import OmegaConf
    from torchtune import config as tt_config
    from torchtune import training
    from transformers import AutoModelForCausalLM

    from valley.train.config import MODEL_TYPES, model_component, shard_files

    model_dir = tiny_model(tmp_path_factory, preset)
    run = mini_run(preset)
    checkpointer = training.FullModelHFCheckpointer(
        checkpoint_dir=str(model_dir),
        checkpoint_files=shard_files(run, from_base=False),
        model_type=MODEL_TYPES[run.model.family],
        output_dir=str(tmp_path / "out"),
    )
    tune_model = tt_config.instantiate(OmegaConf.create(model_component(run)))
    tune_model.load_state_dict(checkpointer.load_checkpoint()[training.MODEL_KEY])
    hf_model = AutoModelForCausalLM.from_pretrained(model_dir)

    tokens = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(tune_model(tokens), hf_model(tokens).logits, atol=1e-4)


@pytest.mark.parametrize("preset", PRESETS)
def test_training_tokens_begin_with_the_evaluation_prompt(tmp_path_factory, preset):
    """Train/eval template parity: the tokens trained on extend exactly the prompt vLLM is given."""
    from torchtune.data import Message
    from transformers import AutoTokenizer

    from valley.train.hf_tokenizer import hf_chat_tokenizer

    model_dir = tiny_model(tmp_path_factory, preset)
    hf = AutoTokenizer.from_pretrained(model_dir)
    tokenizer = hf_chat_tokenizer(str(model_dir), max_seq_len=4096)
    messages = [Message(role=m["role"], content=m["content"], masked=m["role"] != "assistant") for m in CONVERSATION]
    tokens, mask = tokenizer.tokenize_messages(messages)

    prompt = hf.apply_chat_template(CONVERSATION[:1], tokenize=True, add_generation_prompt=True, return_dict=False)
    full = hf.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert tokens == full
    assert tokens[: len(prompt)] == prompt
    user_turn = hf.apply_chat_template(CONVERSATION[:1], tokenize=True, return_dict=False)
    assert mask == [True] * len(user_turn) + [False] * (len(tokens) - len(user_turn))
    assert tokenizer.decode(tokens[len(prompt) :]).startswith("<think>")

    short = hf_chat_tokenizer(str(model_dir), max_seq_len=16).tokenize_messages(messages)[0]
    assert len(short) == 16 and short[-1] == tokenizer.eos_id


@pytest.mark.parametrize("preset", PRESETS)
def test_training_tokens_extend_the_prompt_valley_eval_renders(tmp_path_factory, preset):
    """The same conversation through valley.eval's prompt renderer and the training tokenizer."""
    from torchtune.data import Message
    from transformers import AutoTokenizer

    from valley.eval.prompts import chat_messages, render_prompts
    from valley.train.hf_tokenizer import hf_chat_tokenizer

    model_dir = tiny_model(tmp_path_factory, preset)
    problem = {"question_id": "q1", "question_content": "Print the sum of two integers.", "starter_code": ""}
    prompt = render_prompts([problem], AutoTokenizer.from_pretrained(model_dir), max_model_len=4096)[0].token_ids
    conversation = [*chat_messages(problem), CONVERSATION[1]]
    messages = [Message(role=m["role"], content=m["content"], masked=m["role"] != "assistant") for m in conversation]
    tokens, _ = hf_chat_tokenizer(str(model_dir)).tokenize_messages(messages)
    assert tuple(tokens[: len(prompt)]) == prompt and len(tokens) > len(prompt)
