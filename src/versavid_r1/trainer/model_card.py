"""The model card (`output_dir/README.md`, written by TRL at every checkpoint) names the base model.

TRL links a base model given as a Hub id (`[id](https://huggingface.co/id)`) and passes None for a local
folder, which its template renders as "a fine-tuned version of [None](https://huggingface.co/None)". Every
run of this project starts from a local folder (the demo's warm start, a downloaded Qwen2.5-VL), so the
card names that folder instead (the card's metadata keeps no `base_model`: the Hub wants an id there).
"""
from __future__ import annotations

import os
from typing import Optional

from trl.trainer.utils import get_config_model_id

# TRL 1.16's template with base_model None (trl/templates/lm_model_card.md).
_NO_BASE_LINK = "[None](https://huggingface.co/None)"


def name_local_base(card_path: str, base: str) -> bool:
    """Replace TRL's link to a "None" base model in the card at `card_path` by the local folder `base`."""
    if not os.path.isfile(card_path):
        return False
    text = open(card_path, encoding="utf-8").read()
    if _NO_BASE_LINK not in text:
        return False
    with open(card_path, "w", encoding="utf-8") as f:
        f.write(text.replace(_NO_BASE_LINK, f"the local model `{base}`"))
    return True


class ModelCardMixin:
    """Mixed into the GRPO trainer (before `GRPOTrainer`)."""

    def create_model_card(self, model_name: Optional[str] = None, dataset_name: Optional[str] = None, tags=None):
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        base = get_config_model_id(self.model.config)   # what TRL reads
        if self.is_world_process_zero() and base and os.path.isdir(base):
            name_local_base(os.path.join(self.args.output_dir, "README.md"), os.path.abspath(base))
