"""vLLM's "RotaryEmbedding: Failed to load weights" warning, dropped in every vLLM process.

vLLM's layerwise reload counts a layer's buffers as loadable; the rotary embedding's
`cos_sin_cache` is a non-persistent buffer computed from the config, in no checkpoint, so
no push can fill it, and `finalize_layerwise_processing` puts the same cache back
(correctly) after warning, on every push. Only rotary layers are silenced: any other layer
that receives nothing is a real fault (see `TIED_HEAD` in `trainer.engines.vllm`) and
still warns.

A logging filter lives in one process, and the engine core may run in another (a torchrun
group's rank 0, `own_process`; the workers of `tensor_parallel_size > 1`). vLLM runs its
"general plugins" (entry-point group `vllm.general_plugins`, declared in pyproject.toml) in
every process it starts, so the filter is installed there as a plugin; the engine also
installs it directly, so an in-process engine does not depend on the plugin being enabled
(`VLLM_PLUGINS` can restrict which plugins load).
"""

import logging

RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"


class _DerivedCacheFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        rotary = bool(args) and str(args[0]).endswith("RotaryEmbedding")
        return not (record.msg == "%s: Failed to load weights" and rotary)


DERIVED_CACHE_FILTER = _DerivedCacheFilter()


def quiet_derived_caches() -> None:
    """The `vllm.general_plugins` entry point; idempotent (a logger's filters are a set)."""
    logging.getLogger(RELOAD_LOGGER).addFilter(DERIVED_CACHE_FILTER)
