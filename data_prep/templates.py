"""Prompt templates: how a bare problem becomes the chat ``prompt`` of a verl row.

verl 0.9.1 always renders ``prompt`` with the tokenizer's chat template (``RLHFDataset`` for the length
filter, the agent loop for rollouts), and replaces that template with
``actor_rollout_ref.model.custom_chat_template`` when it is set (``HFModelConfig`` applies it to the
tokenizer both code paths use). So a template here has two halves: the messages written into the data,
and — for base models — the chat template the launch must set so the rendered text is exactly the
intended one. The chosen template is recorded in every output's manifest.

Templates (names are what ``--template`` takes):

``boxed`` (default; instruct and distilled models, e.g. DeepSeek-R1-Distill-Qwen, Qwen2.5-Instruct)
    One user message: the problem, a blank line, then
    ``Please reason step by step, and put your final answer within \\boxed{}.`` — the instruction
    DeepSeek recommends for R1 models (no system prompt) and the one our grader's ``\\boxed{}``
    extraction expects. The model's own chat template renders it.

``qwen_math`` (base models, e.g. Qwen2.5-Math-7B)
    A system message with the same instruction and the bare problem as the user message, rendered as
    ChatML. This is the "Qwen-math template" of Qwen2.5-Math's evaluation and of understand-r1-zero
    (``<|im_start|>system\\nPlease reason step by step, ...<|im_end|>\\n<|im_start|>user\\n{problem}``
    ``<|im_end|>\\n<|im_start|>assistant\\n``). Qwen2.5 base tokenizers ship a ChatML template, which
    renders these messages to exactly that string; for a base model whose tokenizer has no (or another)
    chat template, set ``custom_chat_template`` to :data:`CHATML_CHAT_TEMPLATE`
    (``python -m data_prep chat-template qwen_math --hydra-override``).

``none`` (base models, "no template")
    The bare problem as the only user message, and the launch **must** set
    ``custom_chat_template`` to :data:`RAW_CHAT_TEMPLATE`, which renders the message contents verbatim
    with nothing added (understand-r1-zero found this the best prompt for Qwen2.5-Math base models).
    Without the override verl would wrap the problem in the model's chat template.

Datasets whose problem text already states the answer format (the synthetic ``arith`` task) get the
template's system prompt and chat template but not its instruction suffix, so the instruction is never
given twice.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

#: The boxed-answer instruction (DeepSeek-R1's recommendation; Qwen2.5-Math's system prompt).
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

#: Joins the problem and an instruction suffix in the user message.
INSTRUCTION_SEPARATOR = "\n\n"

#: ChatML (Qwen) rendering of any messages, with the assistant header as generation prompt.
CHATML_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

#: Renders the message contents verbatim, adding nothing (the "no template" prompt of base models).
RAW_CHAT_TEMPLATE = "{%- for message in messages -%}{{- message.content -}}{%- endfor -%}"

#: The hydra key verl 0.9.1 reads a chat-template override from.
CHAT_TEMPLATE_CONFIG_KEY = "actor_rollout_ref.model.custom_chat_template"


@dataclass(frozen=True)
class PromptTemplate:
    """A named way to turn a problem into chat messages (see the module docstring).

    Attributes:
        name: What ``--template`` takes and the manifest records.
        intended_for: Which models it is meant for.
        description: One line for ``python -m data_prep list``.
        system: Content of a leading system message, or ``None`` for no system message.
        instruction: Appended to the problem (after :data:`INSTRUCTION_SEPARATOR`) in the user message,
            or ``None``.
        chat_template: Jinja chat template for ``actor_rollout_ref.model.custom_chat_template``, or
            ``None`` to render with the model's own.
        chat_template_required: Whether the launch must set ``chat_template`` for the prompt to be the
            intended text (``False``: the model's own template gives the same text for its intended
            models).
    """

    name: str
    intended_for: str
    description: str
    system: str | None
    instruction: str | None
    chat_template: str | None
    chat_template_required: bool

    def messages(self, problem: str, *, answer_format_in_problem: bool = False) -> list[dict[str, str]]:
        """The chat ``prompt`` for ``problem``. ``answer_format_in_problem`` drops the instruction suffix."""
        user = problem
        if self.instruction is not None and not answer_format_in_problem:
            user = f"{problem}{INSTRUCTION_SEPARATOR}{self.instruction}"
        messages = [] if self.system is None else [{"role": "system", "content": self.system}]
        messages.append({"role": "user", "content": user})
        return messages

    def manifest_entry(self) -> dict[str, Any]:
        """What the manifest records about the template (everything needed to reproduce the prompt)."""
        entry = asdict(self)
        entry["hydra_override"] = hydra_override(self)
        return entry


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate(
            name="boxed",
            intended_for="instruct and distilled models (e.g. DeepSeek-R1-Distill-Qwen, Qwen2.5-Instruct)",
            description="user: problem + boxed-answer instruction; the model's own chat template",
            system=None,
            instruction=BOXED_INSTRUCTION,
            chat_template=None,
            chat_template_required=False,
        ),
        PromptTemplate(
            name="qwen_math",
            intended_for="base models (e.g. Qwen2.5-Math-7B)",
            description="system: boxed-answer instruction, user: problem; ChatML",
            system=BOXED_INSTRUCTION,
            instruction=None,
            chat_template=CHATML_CHAT_TEMPLATE,
            chat_template_required=False,
        ),
        PromptTemplate(
            name="none",
            intended_for="base models, no template",
            description="the bare problem, rendered verbatim",
            system=None,
            instruction=None,
            chat_template=RAW_CHAT_TEMPLATE,
            chat_template_required=True,
        ),
    )
}

DEFAULT_TEMPLATE = "boxed"


def get_template(name: str) -> PromptTemplate:
    """The template called ``name``; a ``ValueError`` listing the known names otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; known templates: {', '.join(TEMPLATES)}") from None


def hydra_override(template: PromptTemplate) -> str | None:
    """The hydra command-line override that sets ``template.chat_template`` (``None`` if it has none).

    The value is a double-quoted hydra string, so it survives hydra's override parser unchanged (tested);
    pass it to ``python -m verl.trainer.main_ppo`` as one argument. Hydra keeps backslashes literally
    except in front of a quote or at the end of the string, so only those are escaped.
    """
    if template.chat_template is None:
        return None
    return f'{CHAT_TEMPLATE_CONFIG_KEY}="{_hydra_quote_body(template.chat_template)}"'


def _hydra_quote_body(text: str) -> str:
    """Escape ``text`` for the inside of a double-quoted hydra string."""

    def escape(match: re.Match) -> str:
        backslashes, quote = match.group(1), match.group(2)
        return backslashes * 2 + ('\\"' if quote else "")

    return re.sub(r'(\\*)("|$)', escape, text)
