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
