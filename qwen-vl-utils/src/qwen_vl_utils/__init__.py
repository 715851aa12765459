"""Placeholder: filled by the qwen_vl_utils work."""
