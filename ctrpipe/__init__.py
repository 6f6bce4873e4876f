"""ctrpipe: a reproducible click-through-rate pipeline, from raw ad logs to a served model."""
