"""`python -m ctrpipe monitor`: is the model in production still fine?

    traffic.py      the request log and delayed labels on PySpark, reduced to histograms
                    over the reference profile's bins and to prediction buckets per slice
    quality.py      ROC AUC, log loss and calibration from those buckets
    engineering.py  latency, errors, memory and CPU from the service's /metrics
    checks.py       every figure against its warn and alarm levels; the verdict
    actions.py      what an alarm does: trigger retraining, roll back a baking version
    html.py         the report a person reads at a glance
    run.py          the command: reads, computes, writes monitor.json and monitor.html

Spark does the part that grows with traffic (one pass over the logged rows for drift,
one over the labelled rows for quality); what comes back to Python is a few thousand
counts, whatever the traffic.
"""
