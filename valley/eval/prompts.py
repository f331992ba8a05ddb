"""LiveCodeBench prompts rendered with the student's own chat template.

The text is LCB's generic code-generation prompt (lcb_runner/prompts/code_generation.py,
`SYSTEM_MESSAGE_GENERIC` + `get_generic_question_template_answer`): a starter-code variant for
functional (LeetCode) problems and a stdin variant otherwise. It is rendered through the
student's tokenizer chat template, the one it was trained with, so train and eval agree.

LCB's sampling defaults (max_tokens=2000, stop="###") would cut reasoning outputs short, so
there is no stop string and the token budget is `eval.max_model_len` including the prompt:
each prompt gets `max_model_len - prompt_tokens` new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from valley.errors import ValleyError

#: the template name recorded with every run (`eval.prompt_style`)
PROMPT_STYLE = "lcb-generic"

SYSTEM_MESSAGE = (
    "You are an expert Python programmer. You will be given a question (problem specification) "
    "and will generate a correct Python program that matches the specification and passes all tests."
)
FORMAT_WITH_STARTER_CODE = (
    "You will use the following starter code to write the solution to the problem "
    "and enclose your code within delimiters."
)
FORMAT_STDIN = (
    "Read the inputs from stdin solve the problem and write the answer to stdout "
    "(do not directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and writes "
    "output to STDOUT."
)


def question_text(problem: dict) -> str:
    """LCB's user message for one problem (an LCB row in the dataset's own schema)."""
    text = f"### Question:\n{problem['question_content']}\n\n"
    if problem.get("starter_code"):
        text += f"### Format: {FORMAT_WITH_STARTER_CODE}\n```python\n{problem['starter_code']}\n```\n\n"
    else:
        text += f"### Format: {FORMAT_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def chat_messages(problem: dict, style: str = PROMPT_STYLE) -> list[dict]:
    """The conversation for one problem: LCB's (`lcb-generic`) or the SFT data's user turn (`sft`)."""
    if style == "sft":
        from valley.data.build import sft_prompt

        return [{"role": "user", "content": sft_prompt(problem["question_content"], problem.get("starter_code") or "")}]
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": question_text(problem)},
    ]


@dataclass(frozen=True)
class Prompt:
    """One problem's rendered prompt and the new-token budget left after it."""

    question_id: str
    token_ids: tuple[int, ...]
    max_tokens: int


def render_prompts(problems: list[dict], tokenizer, max_model_len: int, style: str = PROMPT_STYLE) -> list[Prompt]:
    """Render every problem with the tokenizer's chat template; fail before any generation if
    a prompt leaves no room for a response inside `max_model_len`."""
    prompts, too_long = [], []
    for problem in problems:
        text = tokenizer.apply_chat_template(chat_messages(problem, style), tokenize=False, add_generation_prompt=True)
        # the template already wrote BOS (Llama) where the family wants one
        ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        budget = max_model_len - len(ids)
        if budget <= 0:
            too_long.append(f"{problem['question_id']} ({len(ids)} tokens)")
        prompts.append(Prompt(problem["question_id"], ids, budget))
    if too_long:
        raise ValleyError(
            f"eval.max_model_len: {max_model_len} tokens leave no room for a response after the prompts of "
            f"{len(too_long)} problem(s): {', '.join(too_long[:5])}; raise eval.max_model_len"
        )
    return prompts
