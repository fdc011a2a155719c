from privft.demo import ranking_markdown


def test_ranking_orders_lower_first():
    summary = {
        "points": [
            {"recipe": "full", "mean": {"sensitive_gap": 0.5, "epsilon": None}},
            {"recipe": "dp_sgd", "mean": {"sensitive_gap": 0.05, "epsilon": 8.0}},
        ],
        "demo_time_s": 12.0,
    }
    table = ranking_markdown(summary)
    assert "| sensitive_gap | nats/token; higher = more PII memorized | 0.5 (#2) | 0.05 (#1) |" in (
        table
    )
    assert "| epsilon | spent by DP runs | none | 8 |" in table
    assert "Demo wall time: 12 s." in table


def test_ranking_reads_sixteen_fold_exposure():
    """The demo ranks by the canaries inserted most often, not by the maximum over all."""
    summary = {
        "points": [
            {"recipe": "full", "mean": {"exposure_r16": 4.2, "exposure_max": 4.6}},
            {"recipe": "dp_sgd", "mean": {"exposure_r16": 2.5, "exposure_max": 4.7}},
        ],
    }
    table = ranking_markdown(summary)
    assert "| exposure_r16 | bits for canaries inserted 16 times" in table
    assert "4.2 (#2) | 2.5 (#1) |" in table
    assert "exposure_max" not in table
