"""LCB's prompt, rendered with each student's own chat template, and the token budget."""

import json

import pytest
from transformers import AutoTokenizer

from tests.valley.eval.conftest import LCB_FIXTURE
from valley.errors import ValleyError
from valley.eval.prompts import SYSTEM_MESSAGE, question_text, render_prompts

PROBLEMS = {row["question_id"]: row for row in map(json.loads, LCB_FIXTURE.read_text().splitlines())}


def test_stdin_problems_get_lcb_stdin_format():
    assert question_text(PROBLEMS["fx-sum"]) == (
        "### Question:\nRead two integers a and b on one line and print a + b.\n\n"
        "### Format: Read the inputs from stdin solve the problem and write the answer to stdout "
        "(do not directly test on the sample inputs). Enclose your code within delimiters as follows. "
        "Ensure that when the python program runs, it reads the inputs, runs the algorithm and writes output to "
        "STDOUT.\n"
        "```python\n# YOUR CODE HERE\n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n"
    )


def test_functional_problems_get_the_starter_code():
    assert question_text(PROBLEMS["fx-double"]) == (
        "### Question:\nReturn twice the given integer x.\n\n"
        "### Format: You will use the following starter code to write the solution to the problem "
        "and enclose your code within delimiters.\n"
        "```python\nclass Solution:\n    def double(self, x: int) -> int:\n        \n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "student,bos,assistant_header",
    [
        ("tiny_qwen", None, "<|im_start|>assistant\n"),
        ("tiny_llama", "<|begin_of_text|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    ],
)
def test_prompts_use_the_students_template_and_leave_the_rest_of_the_budget(student, bos, assistant_header, request):
    model = request.getfixturevalue(student)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    prompts = render_prompts(list(PROBLEMS.values()), tokenizer, 1024)
    for prompt in prompts:
        text = tokenizer.decode(list(prompt.token_ids), skip_special_tokens=False)
        # (Llama's template trims each message, so compare without the trailing blank line)
        assert SYSTEM_MESSAGE in text and question_text(PROBLEMS[prompt.question_id]).strip() in text
        assert text.endswith(assistant_header)  # generation prompt, nothing after it
        assert prompt.max_tokens == 1024 - len(prompt.token_ids)
        if bos:  # the template writes the BOS; tokenizing must not add a second one
            assert text.startswith(bos) and text.count(bos) == 1
    with pytest.raises(ValleyError, match=r"eval\.max_model_len: 100 tokens .* 5 problem\(s\)"):
        render_prompts(list(PROBLEMS.values()), tokenizer, 100)


@pytest.mark.slow
def test_eval_prompt_is_what_training_renders_before_the_answer(tiny_qwen):
    """Train/eval template parity: the SFT tokenizer (torchtune component) and the eval prompt
    both render through the model directory's template, so the eval prompt is exactly the
    trained conversation up to the assistant's text."""
    from torchtune.data import Message

    from valley.train.hf_tokenizer import hf_chat_tokenizer

    problem = PROBLEMS["fx-sum"]
    [prompt] = render_prompts([problem], AutoTokenizer.from_pretrained(str(tiny_qwen)), 1024)
    trainer = hf_chat_tokenizer(str(tiny_qwen))
    messages = [
        Message("system", SYSTEM_MESSAGE),
        Message("user", question_text(problem)),
        Message("assistant", "ANSWER"),
    ]
    trained, _ = trainer.tokenize_messages(messages)
    trained_text = trainer.decode(trained, skip_special_tokens=False)
    eval_text = trainer.decode(list(prompt.token_ids), skip_special_tokens=False)
    assert trained_text.startswith(eval_text) and trained_text[len(eval_text) :].startswith("ANSWER")
