import os

# litellm fetches a model cost map from an outside host at import, and some
# tokenizers reach the Hugging Face Hub, unless these are set. Set them before
# anything can import litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
