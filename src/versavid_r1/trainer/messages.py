"""How a prompt's chat messages are logged: the prompt TRL passes to rewards and logs, and the one-string-per-
message form of the completions table (wandb and parquet tables need one type per column)."""
from __future__ import annotations

from typing import Any


def loggable_messages(messages: list) -> list:
    """The prompt as TRL logs and passes it to rewards: a video part names its source(s) as one string, so
    the completions table stays one Arrow type (a MixVidQA pair is a list of two paths)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [
                {**part, "video": " | ".join(map(str, part["video"]))}
                if part.get("type") == "video" and isinstance(part.get("video"), (list, tuple))
                else part
                for part in content
            ]
        out.append({**message, "content": content})
    return out


def table_messages(messages: Any) -> Any:
    """Chat messages with each content part list joined into one string (a video part becomes
    "<video: PATH>", an image part "<image>"), for the completions table. Other values pass unchanged."""
    if not isinstance(messages, (list, tuple)):
        return messages
    out = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, (list, tuple)):
            out.append(message)
            continue
        pieces = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "video" or (isinstance(part, dict) and "video" in part and kind != "text"):
                pieces.append(f"<video: {part.get('video')}>")
            elif kind == "image":
                pieces.append("<image>")
            elif isinstance(part, dict):
                pieces.append(str(part.get("text") or ""))
            else:
                pieces.append(str(part))
        out.append({**message, "content": "".join(pieces)})
    return out
