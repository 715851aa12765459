"""qwen_vl_utils: VersaVid-R1's own video/image preprocessing for Qwen2-VL / Qwen2.5-VL.

API-compatible with the public functions of qwen-vl-utils 0.0.14, with every limit explicit and
per-frame timestamps in the metadata. See README.md in this folder.
"""
from setuptools import find_packages, setup

setup(
    name="qwen-vl-utils",
    version="0.0.14+versavid",
    description="Explicit-limit video/image preprocessing for Qwen2.5-VL (VersaVid-R1)",
    package_dir={"": "src"},
    packages=find_packages("src"),
    python_requires=">=3.10",
    install_requires=["av", "decord", "numpy", "pillow", "torch"],
)
