"""VersaVid-R1: GRPO training of Qwen2.5-VL for video reasoning (arXiv 2506.09079).

The versions below are one set that installs and runs together (see docs/stack.md and the
README's "Install" section). torch/torchvision are listed here for completeness; the install script
(scripts/install.sh) installs them first so that a CPU-only local torch wheel cannot shadow the
registry's build that torchvision 0.28.0 was compiled against.
"""
from setuptools import find_packages, setup

CORE = [
    "torch==2.13.0",
    "torchvision==0.28.0",
    "transformers>=5.17.0,<5.18",
    "tokenizers==0.23.3",
    "trl==1.16.0",
    "accelerate==1.15.0",
    "deepspeed==0.19.8",
    "peft==0.21.2",
    "datasets==5.2.0",
    "decord==0.6.0",
    "av==18.1.0",
    "numpy>=2.0,<3",
    "pillow>=11",
    "fastapi==0.165.0",
    "uvicorn==0.54.0",
    "pydantic==2.14.3",
    "httpx==0.28.1",
    "openai==3.54.0",
    "math-verify==0.9.0",
    "pyyaml>=6",
    "tensorboard==2.21.0",
    "tqdm>=4.66",
    "matplotlib==3.11.2",
]

EXTRAS = {
    "dev": [
        "pytest==9.2.0",
        "hypothesis==6.170.15",
        "pytest-timeout==2.4.0",
        "pytest-xdist==3.8.0",
    ],
    # An experiment tracker for `--report_to wandb` (TensorBoard, the default, is in CORE). Runs offline
    # with WANDB_MODE=offline; `wandb sync` uploads later. bash scripts/install.sh --tracking installs it.
    "tracking": [
        "wandb==0.31.0",
    ],
    # Only installable on CUDA machines: flash-attn builds from source against the local CUDA toolkit.
    "gpu": [
        "vllm==0.31.0",
        "flash-attn==2.8.3",
    ],
}

setup(
    name="versavid-r1",
    version="0.1.0",
    description="Video reasoning with GRPO: DarkEventInfer, MixVidQA, MCQA and captioning rewards",
    package_dir={"": "src"},
    packages=find_packages("src"),
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
)
