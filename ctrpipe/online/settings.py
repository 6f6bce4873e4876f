"""The `online` group (conf/online/): its values live there only."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from ctrpipe.config import Strict


class Online(Strict):
    # The snapshot's cut time (UTC); null: the newest good base record's time.
    cut: dt.datetime | None = None
    # Golden rows the skew check serves from their raw records (evenly spaced in time).
    skew_rows: int = Field(gt=0)
