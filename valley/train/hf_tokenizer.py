"""A torchtune model tokenizer that renders conversations with the model's own HF chat template.

torchtune's Qwen2.5 and Llama 3 tokenizers hand-code their chat formats and differ from the
templates vLLM applies at evaluation (neither adds Qwen's default system prompt or Llama
3.1's "Cutting Knowledge Date" system header). This tokenizer renders every conversation
through `tokenizer_config.json`'s chat template with transformers, so the text a student is
trained on is byte for byte the text it is prompted with at evaluation. torchtune 0.6.1 has
no HF tokenizer usable by recipes, hence this component:

    tokenizer:
      _component_: valley.train.hf_tokenizer.hf_chat_tokenizer
      path: /models/qwen
      max_seq_len: 32768
"""

from __future__ import annotations

from typing import Any, Mapping

from torchtune.data import Message, truncate
from torchtune.modules.transforms import Transform
from torchtune.modules.transforms.tokenizers import ModelTokenizer


class HFChatTokenizer(ModelTokenizer, Transform):
    """Tokenizes torchtune messages through a Hugging Face tokenizer directory's chat template.

    Each message's tokens are the text its turn adds to the rendered conversation, masked as
    the message is (prompt turns masked, assistant turns trained). The template already ends
    every turn with the family's stop token, so no extra EOS is appended.

    Args:
        path: a Hugging Face model or tokenizer directory (tokenizer.json + tokenizer_config.json).
        max_seq_len: truncate longer sequences to this many tokens (the last becomes EOS).

    Raises:
        ValueError: the directory has no chat template, or the template does not render a
            conversation as the concatenation of its turns.
    """

    def __init__(self, path: str, max_seq_len: int | None = None):
        from transformers import AutoTokenizer

        self._hf = AutoTokenizer.from_pretrained(path)
        if not self._hf.chat_template:
            raise ValueError(f"tokenizer.path: {path} has no chat template in tokenizer_config.json")
        self.max_seq_len = max_seq_len
        self.special_tokens: dict[str, int] = {
            token.content: index for index, token in self._hf.added_tokens_decoder.items() if token.special
        }
        self.eos_id: int = self._hf.eos_token_id
        self.bos_id: int | None = self._hf.bos_token_id
        pad = self._hf.pad_token_id
        self.pad_id: int = pad if pad is not None else self.special_tokens.get("<|finetune_right_pad_id|>", self.eos_id)

    @property
    def vocab_size(self) -> int:
        return len(self._hf)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._hf.encode(text, add_special_tokens=False)
        return ([self.bos_id] if add_bos and self.bos_id is not None else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        return self._hf.decode(token_ids, skip_special_tokens=skip_special_tokens)

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        return self._hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def tokenize_messages(self, messages: list[Message], add_eos: bool = True) -> tuple[list[int], list[bool]]:
        """Token ids and loss mask (True = not trained on) of one conversation."""
        turns = [{"role": m.role, "content": m.text_content} for m in messages]
        tokens: list[int] = []
        mask: list[bool] = []
        rendered = ""
        for count, message in enumerate(messages, start=1):
            text = self.render(turns[:count])
            if not text.startswith(rendered):
                raise ValueError("tokenizer: the chat template does not render turns as a growing prefix")
            ids = self.encode(text[len(rendered) :])
            tokens += ids
            mask += [message.masked] * len(ids)
            rendered = text
        if self.max_seq_len and len(tokens) > self.max_seq_len:
            tokens = truncate(tokens, self.max_seq_len, self.eos_id)
            mask = truncate(mask, self.max_seq_len, True)
        return tokens, mask

    def __call__(self, sample: Mapping[str, Any], inference: bool = False) -> Mapping[str, Any]:
        sample = dict(sample)
        tokens, mask = self.tokenize_messages(sample.pop("messages"))
        return {**sample, "tokens": tokens, "mask": mask}


def hf_chat_tokenizer(path: str, max_seq_len: int | None = None) -> HFChatTokenizer:
    """Builder referenced from rendered configs (`tokenizer._component_`)."""
    return HFChatTokenizer(path, max_seq_len=max_seq_len)
