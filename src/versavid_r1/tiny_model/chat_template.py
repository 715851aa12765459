"""Chat templates for the tiny models, written from Qwen's documented ChatML format.

Qwen2-VL / Qwen2.5-VL (`VL_CHAT_TEMPLATE`), rendered for
`[{"role": "user", "content": [{"type": "video", "video": ...}, {"type": "text", "text": "Q"}]}]`
with `add_generation_prompt=True`::

    <|im_start|>system
    You are a helpful assistant.<|im_end|>
    <|im_start|>user
    <|vision_start|><|video_pad|><|vision_end|>Q<|im_end|>
    <|im_start|>assistant

- A default system turn is inserted when the first message is not a system message (as the real
  template does; the VersaVid-R1 reference therefore "uses no system prompt" but still gets this one).
- A content part counts as an image when its type is "image" or it has an "image"/"image_url" key,
  as a video when its type is "video" or it has a "video" key: key presence, not value, exactly like
  the real template. So a text part that gained `"video": None` (Arrow merging part keys) emits an
  extra placeholder here just as it would with the real model; the tiny model reproduces that trap
  instead of hiding it.
- `add_vision_id=True` prefixes "Picture N: " / "Video N: ".
- String content is emitted as is; the processor expands each `<|image_pad|>`/`<|video_pad|>` to the
  number of merged patches.

The templates use no Jinja whitespace control: every character outside the tags is output.
transformers renders with trim_blocks/lstrip_blocks, so no literal newline may directly follow a
block tag (none does).

Qwen3-VL (`QWEN3_VL_CHAT_TEMPLATE`) renders video the same way but inserts no default system turn;
Qwen3.5 (`QWEN35_CHAT_TEMPLATE`) also opens a `<think>` block in the generation prompt unless the template is
called with `enable_thinking=False` (then an empty `<think>\n\n</think>\n\n` block), as the real templates do.
The processor of those models expands `<|video_pad|>` into one `<t seconds><|vision_start|>...<|vision_end|>`
group per two frames, inside the template's own `<|vision_start|>`/`<|vision_end|>`.

`TEXT_CHAT_TEMPLATE` is the same ChatML for text-only models (the judge's causal LM): content is a
string or a list of text parts; the default system prompt is Qwen2.5-Instruct's.
"""
from __future__ import annotations

VL_DEFAULT_SYSTEM = "You are a helpful assistant."
TEXT_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

def _vl_template(default_system: str | None, generation_prompt: str) -> str:
    """ChatML with image and video parts; a default system turn when `default_system` is set."""
    system = ("{% if loop.first and message['role'] != 'system' %}"
              "<|im_start|>system\n" + default_system + "<|im_end|>\n"
              "{% endif %}") if default_system else ""
    return (
        "{% set image_count = namespace(value=0) %}"
        "{% set video_count = namespace(value=0) %}"
        "{% for message in messages %}"
        + system +
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}"
        "{{ message['content'] }}"
        "{% else %}"
        "{% for content in message['content'] %}"
        "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
        "{% set image_count.value = image_count.value + 1 %}"
        "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
        "<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif content['type'] == 'video' or 'video' in content %}"
        "{% set video_count.value = video_count.value + 1 %}"
        "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
        "<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif 'text' in content %}"
        "{{ content['text'] }}"
        "{% endif %}"
        "{% endfor %}"
        "{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}"
        + generation_prompt +
        "{% endif %}"
    )


VL_CHAT_TEMPLATE = _vl_template(VL_DEFAULT_SYSTEM, "<|im_start|>assistant\n")
QWEN3_VL_CHAT_TEMPLATE = _vl_template(None, "<|im_start|>assistant\n")
# Qwen3.5 thinks by default: the generation prompt opens a <think> block; `enable_thinking=false` (a chat template
# keyword, e.g. GRPOConfig's `chat_template_kwargs`) closes an empty one instead, as the real template does.
QWEN35_CHAT_TEMPLATE = _vl_template(
    None, "<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
          "<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}")

TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + TEXT_DEFAULT_SYSTEM + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'text' or 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)
